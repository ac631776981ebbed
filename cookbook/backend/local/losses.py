"""Built-in losses with Tinker semantics: token-wise raw sums per datum, never means.

Each loss takes the trainer's log-probabilities ``logp`` of ``target_tokens`` (shape ``[N]``, or
``[N, K]`` for cross-entropy with K targets per position) and the datum's other inputs as tensors,
and returns the datum's scalar loss. Notation: ``logq`` = ``logprobs`` input (the sampler's
log-probabilities), ``A`` = ``advantages``, ``r = exp(logp - logq)``, ``sg`` = stop-gradient.

=====================  =============================================  ==========================
loss                   objective (summed over tokens)                 loss_fn_config (default)
=====================  =============================================  ==========================
cross_entropy          -logp * weights                                -
importance_sampling    -r * A                                         -
ppo                    -min(r * A, clip(r, lo, hi) * A)               clip_low_threshold (0.8),
                                                                      clip_high_threshold (1.2)
cispo                  -sg(clip(r, lo, hi)) * A * logp                clip_low_threshold (0.0),
                                                                      clip_high_threshold (4.0)
dro                    -(logp * A - beta/2 * (logp - logq)^2)         beta (0.05)
gspo                   -min(s_t * A, clip(s_t, lo, hi) * A)           clip_low_threshold (0.9997),
                                                                      clip_high_threshold (1.0004)
stable_reinforce       on sampled tokens only (see below):            clip_high_threshold (2.0),
                       -sg(min(w, cap)) * A * logp + kl_coeff * k3    kl_coeff (0.0)
=====================  =============================================  ==========================

**GSPO** (the token-level variant the Tinker docs define): the sequence log-ratio is the mean of
``sg(logp) - logq`` over the positions ``sequence_ratio_mask`` marks (nonzero); every token's ratio
``s_t = exp(that mean + logp - sg(logp))`` has the sequence ratio's value and its own token's
gradient. Chosen here where the docs leave it open: the defaults are the GSPO paper's clipping
range (``1 - 3e-4``, ``1 + 4e-4``, as absolute ratio bounds like ``ppo``'s keys); a datum whose mask
marks no position has sequence log-ratio 0 (ratio 1, no clipping), not NaN.

**StableReinforce** (``stable_reinforce``; alpha in Tinker, whose docs do not publish the
objective, so this one is ours): it trains only on target positions that the datum's provenance
(``Datum.with_provenance``) attributes to a ``SampledProvenanceSpan`` of a sequence sampled with
``record_stability_info=True`` in the same session. The behaviour log-probability ``b`` of each such
token is not taken from the client: it is what the sampler recorded (``stability.py``): the token's
log-probability under the distribution it was really drawn from (temperature, then top-k / top-p
renormalised; 0 for greedy choices). With ``w = exp(logp - b)``::

    loss = sum over sampled tokens of  -sg(min(w, clip_high_threshold)) * A * logp
                                       + kl_coeff * (w - 1 - log w)

The first term is REINFORCE with a truncated importance weight (its gradient is the off-policy
policy gradient, bounded by the cap however far the sampler drifted); the second (k3, an unbiased
estimate of KL(sampler || trainer) from the sampled tokens) pulls the trainer back towards the
sampler. Inputs: ``target_tokens``, ``advantages`` and the provenance; a ``logprobs`` input is
ignored (the record wins).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

LossFn = Callable[[torch.Tensor, Mapping[str, torch.Tensor], Mapping[str, float]], torch.Tensor]

# inputs stable_reinforce gets from the stability records (not from the client): the behaviour
# logprob of each target, and 1 where the target is a recorded sampled token
BEHAVIOUR_LOGPROBS, SAMPLED_MASK = "__behaviour_logprobs", "__sampled_mask"


@dataclass(frozen=True)
class LossSpec:
    fn: LossFn
    inputs: tuple[str, ...]  # required loss_fn_inputs besides target_tokens
    config_defaults: Mapping[str, float]
    multi_target: bool = False  # accepts [N, K] targets
    needs_provenance: bool = False  # reads the stability records named by the datum's provenance


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


def _gspo(logp, x, cfg):
    in_ratio = x["sequence_ratio_mask"] != 0
    token_log_ratio = logp.detach() - x["logprobs"]
    log_ratio = token_log_ratio[in_ratio].mean() if bool(in_ratio.any()) else token_log_ratio.new_zeros(())
    ratio = torch.exp(log_ratio + logp - logp.detach())
    adv = x["advantages"]
    clipped = ratio.clamp(cfg["clip_low_threshold"], cfg["clip_high_threshold"])
    return -torch.minimum(ratio * adv, clipped * adv).sum()


def _stable_reinforce(logp, x, cfg):
    sampled = x[SAMPLED_MASK]
    log_w = (logp - x[BEHAVIOUR_LOGPROBS]) * sampled  # 0 off the sampled tokens
    weight = torch.exp(log_w.detach()).clamp(max=cfg["clip_high_threshold"])
    policy = -(weight * x["advantages"] * logp * sampled).sum()
    k3 = ((torch.exp(log_w) - 1.0 - log_w) * sampled).sum()
    return policy + cfg["kl_coeff"] * k3


_RL_INPUTS = ("logprobs", "advantages")

LOSSES: dict[str, LossSpec] = {
    "cross_entropy": LossSpec(_cross_entropy, ("weights",), {}, multi_target=True),
    "importance_sampling": LossSpec(_importance_sampling, _RL_INPUTS, {}),
    "ppo": LossSpec(_ppo, _RL_INPUTS, {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2}),
    "cispo": LossSpec(_cispo, _RL_INPUTS, {"clip_low_threshold": 0.0, "clip_high_threshold": 4.0}),
    "dro": LossSpec(_dro, _RL_INPUTS, {"beta": 0.05}),
    "gspo": LossSpec(_gspo, (*_RL_INPUTS, "sequence_ratio_mask"),
                     {"clip_low_threshold": 1.0 - 3e-4, "clip_high_threshold": 1.0 + 4e-4}),
    "stable_reinforce": LossSpec(_stable_reinforce, ("advantages",),
                                 {"clip_high_threshold": 2.0, "kl_coeff": 0.0}, needs_provenance=True),
}


def resolve_config(spec: LossSpec, config: Mapping[str, float | str] | None) -> dict[str, float]:
    merged = dict(spec.config_defaults)
    merged.update({k: float(v) for k, v in (config or {}).items()})
    return merged
