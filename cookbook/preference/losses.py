"""Preference losses of sequence log-probabilities: DPO and its variants, reference-free ones, and KTO.

Every loss here is a function of per-example tensors of *sequence* log-probabilities (the weighted
sum of a completion's token logprobs), so it is differentiable through ``forward_backward_custom``.
Notation, per comparison: ``pc`` / ``pr`` the policy's logprob of the chosen / rejected completion,
``rc`` / ``rr`` the reference's, ``|c|`` / ``|r|`` their token counts, ``h = (pc - rc) - (pr - rr)``
(the difference of log-ratios), ``b`` = ``beta``, ``e`` = ``label_smoothing``, ``s`` = sigmoid.
Each loss is the mean over comparisons of:

==========  ==============================================================  =======================
loss_type   per comparison                                                  paper
==========  ==============================================================  =======================
dpo         ``-log s(b h)``                                                 Rafailov et al. 2023
cdpo        ``-(1 - e) log s(b h) - e log s(-b h)`` (labels flipped w.p. e)  Mitchell 2023
robust      ``(-(1 - e) log s(b h) + e log s(-b h)) / (1 - 2e)``            Chowdhury et al. 2024
ipo         ``(h - 1 / (2 b))^2``                                           Azar et al. 2023
hinge       ``max(0, 1 - b h)``                                             Zhao et al. 2023 (SLiC)
simpo       ``-log s(b (pc / |c| - pr / |r|) - gamma)``, no reference       Meng et al. 2024
cpo         ``-log s(b (pc - pr))`` + chosen NLL per token, no reference    Xu et al. 2024
orpo        chosen NLL per token ``+ b * -log s(odds(c) - odds(r))``,       Hong et al. 2024
            ``odds(y) = l - log(1 - exp(l))``, ``l = p / |y|``; no reference
==========  ==============================================================  =======================

(``gamma`` = ``simpo_gamma``; for ORPO ``beta`` is the paper's lambda, the odds-ratio term's weight.)
``sft_weight`` adds that times the chosen completions' NLL per token to any of them.

**KTO** (Ethayarajh et al. 2024) learns from unpaired examples, each desirable or not: with
``r = p - ref`` the example's log-ratio and ``z`` the batch's KL estimate (the mean log-ratio of
mismatched prompt / completion pairs, clamped at 0 and not differentiated)::

    desirable:    wd * (1 - s(b (r - z)))
    undesirable:  wu * (1 - s(b (z - r)))

averaged over the batch (``wd`` / ``wu`` = ``desirable_weight`` / ``undesirable_weight``).

Metrics (no prefix): ``loss``, ``accuracy`` (the chosen completion's implicit reward beats the
rejected one's), ``margin``, ``chosen_reward``, ``rejected_reward``, and ``sft_nll`` when an NLL term
is in the loss. The implicit reward is ``b (p - ref)`` for the reference-based losses, ``b p / |y|``
for SimPO, ``b p`` for CPO and the log-odds for ORPO; KTO reports ``kl`` and the rewards of its
desirable and undesirable examples.

A leaf: imports ``torch`` and ``cookbook.errors`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from cookbook.errors import ConfigError

PreferenceLossName = Literal["dpo", "cdpo", "robust", "ipo", "hinge", "simpo", "cpo", "orpo", "kto"]
PREFERENCE_LOSSES: tuple[str, ...] = get_args(PreferenceLossName)
REFERENCE_FREE: tuple[str, ...] = ("simpo", "cpo", "orpo")  # these need no reference logprobs
WITH_NLL: tuple[str, ...] = ("cpo", "orpo")  # these include the chosen NLL per token (weight 1)


@dataclass(frozen=True)
class LossSettings:
    """Which loss and its coefficients (see the module docstring)."""

    loss_type: PreferenceLossName = "dpo"
    beta: float = 0.1
    label_smoothing: float = 0.0  # cdpo / robust: the assumed probability that a label is flipped
    simpo_gamma: float = 0.5  # simpo: the target reward margin
    sft_weight: float = 0.0  # an added chosen-NLL term (per token)
    desirable_weight: float = 1.0  # kto
    undesirable_weight: float = 1.0  # kto

    def __post_init__(self) -> None:
        if self.loss_type not in PREFERENCE_LOSSES:
            raise ConfigError(f"unknown preference loss {self.loss_type!r}; "
                              f"choose one of {', '.join(PREFERENCE_LOSSES)}")
        if self.loss_type == "robust" and not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"robust DPO needs 0 <= label_smoothing < 0.5, got {self.label_smoothing}")
        if not 0 <= self.label_smoothing <= 1:
            raise ConfigError(f"label_smoothing must be in [0, 1], got {self.label_smoothing}")

    @property
    def reference_free(self) -> bool:
        return self.loss_type in REFERENCE_FREE


def _mean_metrics(loss: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    margin = (chosen - rejected).detach()
    return {"loss": float(loss.detach()), "accuracy": float((margin > 0).float().mean()),
            "margin": float(margin.mean()), "chosen_reward": float(chosen.detach().mean()),
            "rejected_reward": float(rejected.detach().mean())}


def log_odds(mean_logprob: torch.Tensor) -> torch.Tensor:
    """``log(p / (1 - p))`` of ``p = exp(mean_logprob)`` (ORPO's odds of a length-normalised likelihood)."""
    return mean_logprob - torch.log(-torch.expm1(mean_logprob.clamp(max=-1e-6)))


def pair_objective(settings: LossSettings, chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor,
                   ref_rejected: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """The mean loss of comparisons given as 1-D tensors (sequence logprobs and token counts) and its metrics."""
    b, e, kind = settings.beta, settings.label_smoothing, settings.loss_type
    nll = -chosen.sum() / chosen_tokens.sum().clamp(min=1e-9)
    if kind in ("dpo", "cdpo", "robust", "ipo", "hinge"):
        chosen_reward, rejected_reward = b * (chosen - ref_chosen), b * (rejected - ref_rejected)
        h = (chosen - ref_chosen) - (rejected - ref_rejected)
        if kind == "dpo":
            per = -F.logsigmoid(b * h)
        elif kind == "cdpo":
            per = -(1 - e) * F.logsigmoid(b * h) - e * F.logsigmoid(-b * h)
        elif kind == "robust":
            per = (-(1 - e) * F.logsigmoid(b * h) + e * F.logsigmoid(-b * h)) / (1 - 2 * e)
        elif kind == "ipo":
            per = (h - 1 / (2 * b)) ** 2
        else:
            per = torch.relu(1 - b * h)
    elif kind == "simpo":
        chosen_reward, rejected_reward = b * chosen / chosen_tokens, b * rejected / rejected_tokens
        per = -F.logsigmoid(chosen_reward - rejected_reward - settings.simpo_gamma)
    elif kind == "cpo":
        chosen_reward, rejected_reward = b * chosen, b * rejected
        per = -F.logsigmoid(chosen_reward - rejected_reward)
    elif kind == "orpo":
        chosen_reward, rejected_reward = log_odds(chosen / chosen_tokens), log_odds(rejected / rejected_tokens)
        per = -b * F.logsigmoid(chosen_reward - rejected_reward)
    else:
        raise ValueError(f"{kind!r} is not a pairwise loss")
    loss = per.mean()
    nll_weight = (1.0 if kind in WITH_NLL else 0.0) + settings.sft_weight
    if nll_weight:
        loss = loss + nll_weight * nll
    metrics = _mean_metrics(loss, chosen_reward, rejected_reward)
    if nll_weight:
        metrics["sft_nll"] = float(nll.detach())
    return loss, metrics


def kto_objective(settings: LossSettings, policy: torch.Tensor, reference: torch.Tensor, kl_policy: torch.Tensor,
                  kl_reference: torch.Tensor, desirable: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """KTO's mean loss over examples (1-D tensors: sequence logprobs of each completion and of its mismatched
    KL completion under the policy and the reference; ``desirable`` a bool tensor) and its metrics."""
    b = settings.beta
    z = (kl_policy - kl_reference).mean().clamp(min=0).detach()
    ratio = policy - reference
    good = desirable.to(torch.bool)
    per = torch.where(good, settings.desirable_weight * (1 - torch.sigmoid(b * (ratio - z))),
                      settings.undesirable_weight * (1 - torch.sigmoid(b * (z - ratio))))
    loss = per.mean()
    reward = (b * ratio).detach()
    metrics = {"loss": float(loss.detach()), "kl": float(z)}
    if good.any():
        metrics["chosen_reward"] = float(reward[good].mean())
    if (~good).any():
        metrics["rejected_reward"] = float(reward[~good].mean())
    if good.any() and (~good).any():
        metrics["margin"] = metrics["chosen_reward"] - metrics["rejected_reward"]
    return loss, metrics
