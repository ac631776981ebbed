"""Built-in losses with Tinker semantics: token-wise raw sums per datum, never means.

Each loss takes the trainer's log-probabilities ``logp`` of ``target_tokens`` (shape ``[N]``, or
``[N, K]`` for cross-entropy with K targets per position) and the datum's other inputs as tensors,
and returns the datum's scalar loss. Notation: ``logq`` = ``logprobs`` input (the sampler's
log-probabilities), ``A`` = ``advantages``, ``r = exp(logp - logq)``.

=====================  =============================================  ==========================
loss                   objective (summed over tokens)                 loss_fn_config (default)
=====================  =============================================  ==========================
cross_entropy          -logp * weights                                -
importance_sampling    -r * A                                         -
ppo                    -min(r * A, clip(r, lo, hi) * A)               clip_low_threshold (0.8),
                                                                      clip_high_threshold (1.2)
cispo                  -stopgrad(clip(r, lo, hi)) * A * logp          clip_low_threshold (0.0),
                                                                      clip_high_threshold (4.0)
dro                    -(logp * A - beta/2 * (logp - logq)^2)         beta (0.05)
=====================  =============================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

LossFn = Callable[[torch.Tensor, Mapping[str, torch.Tensor], Mapping[str, float]], torch.Tensor]


@dataclass(frozen=True)
class LossSpec:
    fn: LossFn
    inputs: tuple[str, ...]  # required loss_fn_inputs besides target_tokens
    config_defaults: Mapping[str, float]
    multi_target: bool = False  # accepts [N, K] targets


def _cross_entropy(logp, x, cfg):
    return -(logp * x["weights"]).sum()


def _ratio(logp, x):
    return torch.exp(logp - x["logprobs"])


def _importance_sampling(logp, x, cfg):
    return -(_ratio(logp, x) * x["advantages"]).sum()


def _ppo(logp, x, cfg):
    r, adv = _ratio(logp, x), x["advantages"]
    clipped = r.clamp(cfg["clip_low_threshold"], cfg["clip_high_threshold"])
    return -torch.minimum(r * adv, clipped * adv).sum()


def _cispo(logp, x, cfg):
    weight = _ratio(logp, x).clamp(cfg["clip_low_threshold"], cfg["clip_high_threshold"]).detach()
    return -(weight * x["advantages"] * logp).sum()


def _dro(logp, x, cfg):
    diff = logp - x["logprobs"]
    return -(logp * x["advantages"] - 0.5 * cfg["beta"] * diff * diff).sum()


_RL_INPUTS = ("logprobs", "advantages")

LOSSES: dict[str, LossSpec] = {
    "cross_entropy": LossSpec(_cross_entropy, ("weights",), {}, multi_target=True),
    "importance_sampling": LossSpec(_importance_sampling, _RL_INPUTS, {}),
    "ppo": LossSpec(_ppo, _RL_INPUTS, {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2}),
    "cispo": LossSpec(_cispo, _RL_INPUTS, {"clip_low_threshold": 0.0, "clip_high_threshold": 4.0}),
    "dro": LossSpec(_dro, _RL_INPUTS, {"beta": 0.05}),
}


def resolve_config(spec: LossSpec, config: Mapping[str, float] | None) -> dict[str, float]:
    merged = dict(spec.config_defaults)
    merged.update({k: float(v) for k, v in (config or {}).items()})
    return merged
