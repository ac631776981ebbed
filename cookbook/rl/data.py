"""From sampled episodes to training data: advantages (several estimators) and Datums.

Token in, token out: the Datums are built from the exact tokens that were sampled and the prompts
they were sampled from, never from re-tokenised text. A multi-turn episode becomes one sequence
when each turn's prompt extends the previous prompt plus its action (the usual chat case), and
starts a new sequence wherever it does not. Action tokens carry the sampler's logprobs and the
episode's advantage; observation tokens carry advantage 0, so no loss touches them. The mask of
action tokens stays on this side (:class:`Sequence`), since the losses take no mask input.

Advantage estimators (:func:`batch_advantages`, ``advantage_estimator`` in the RL loop), per episode
of reward ``r`` in a group of ``n`` with mean ``m`` and std ``s``, in a batch with mean ``M`` and std ``S``:

- ``group_mean``: ``r - m`` (Dr. GRPO's: no std division; the losses' raw token sums are its
  "no length normalisation", with ``loss_normalization=sum``);
- ``group_std``: ``(r - m) / (s + eps)`` (GRPO);
- ``rloo``: ``r`` minus the mean of the *other* episodes of its group, ``n / (n - 1) * (r - m)``
  (REINFORCE leave-one-out, Ahmadian et al. 2024);
- ``reinforce_pp``: ``(r - M) / (S + eps)`` over the whole batch (REINFORCE++'s global batch
  normalisation, Hu 2025).

How token terms add up (:func:`normalize_token_advantages`, ``loss_normalization``): ``sum`` (the
losses' raw sum over tokens), ``token_mean`` (divided by the batch's action tokens: every token
weighs the same, DAPO's token-level loss), ``sequence_mean`` (each sequence divided by its own
action tokens and the batch by its number of sequences: GRPO's per-sample mean). The scale goes into
the per-token advantages, so it works with every built-in loss (exactly for those linear in the
advantage; ``dro``'s quadratic term is left unscaled). :func:`overlong_penalties` is DAPO's soft
penalty on replies near ``max_tokens``.

:func:`logprob_gap` scores sequences with another policy (``compute_logprobs``): the per-token gap
between the sampler and that policy is the RL loop's KL penalty (on-policy distillation's reverse
KL, with the teacher as that policy); :func:`token_advantages` combines it with the rewards. A
:data:`Reference` is one policy, or one per prompt source (the name of the group builder that made
the episode: :func:`sequence_sources`), e.g. a teacher per source in multi-teacher distillation.

Each sequence also keeps its provenance (:mod:`cookbook.rl.provenance`: which sampled sequence's
prompt or sampled tokens each token is), when the sampler named its sequences; ``to_datum`` attaches
it for ``stable_reinforce`` and adds the ``sequence_ratio_mask`` (the action tokens) ``gspo`` needs.

May import ``cookbook.rl.types``, ``cookbook.rl.provenance``, ``cookbook.primitives`` and ``tinker``.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias

import numpy as np
from tinker import types

from cookbook.errors import ConfigError
from cookbook.primitives import SamplingClient
from cookbook.rl.provenance import Run, with_provenance
from cookbook.rl.types import Trajectory, TrajectoryGroup

AdvantageEstimator = Literal["group_mean", "group_std", "rloo", "reinforce_pp"]
LossNormalization = Literal["sum", "token_mean", "sequence_mean"]

# The policy sequences are scored against: one for all, or one per prompt source (builder name)
Reference: TypeAlias = SamplingClient | Mapping[str, SamplingClient]


def batch_advantages(rewards: Seq[Seq[float]], estimator: AdvantageEstimator = "group_mean", *,
                     eps: float = 1e-6) -> list[list[float]]:
    """Each episode's advantage, from the rewards of a batch's groups (``rewards[g][e]``; see the module
    docstring for the estimators)."""
    groups = [np.asarray(r, dtype=np.float64) for r in rewards]
    if estimator == "reinforce_pp":
        flat = np.concatenate(groups) if groups else np.zeros(0)
        mean, std = (flat.mean(), flat.std()) if flat.size else (0.0, 0.0)
        return [((r - mean) / (std + eps)).tolist() for r in groups]
    out = []
    for r in groups:
        centred = r - r.mean()
        if estimator == "group_std":
            centred = centred / (r.std() + eps)
        elif estimator == "rloo":
            centred = centred * (len(r) / (len(r) - 1)) if len(r) > 1 else np.zeros_like(r)
        elif estimator != "group_mean":
            raise ValueError(f"unknown advantage estimator {estimator!r}")
        out.append(centred.tolist())
    return out


def group_advantages(rewards: Seq[float], estimator: AdvantageEstimator = "group_mean") -> list[float]:
    """The advantages of one group's rewards (``reinforce_pp`` treats the group as the whole batch)."""
    return batch_advantages([rewards], estimator)[0]


def overlong_penalties(group: TrajectoryGroup, max_tokens: int, buffer: float, penalty: float = 1.0) -> list[float]:
    """DAPO's soft overlong punishment of each episode, summed over its replies: a reply of ``L`` tokens
    gets 0 up to ``max_tokens - buffer`` tokens, then ``-penalty`` times ``(L - (max_tokens - buffer)) / buffer``
    (``-penalty`` at ``max_tokens``, where sampling cuts it off). ``buffer`` is in tokens."""
    if buffer <= 0:
        return [0.0] * len(group.trajectories)
    start = max_tokens - buffer
    return [-penalty * sum(min(max(len(t.action) - start, 0) / buffer, 1.0) for t in trajectory.transitions)
            for trajectory in group.trajectories]


def with_overlong_penalty(groups: Seq[TrajectoryGroup], max_tokens: int, buffer: float,
                          penalty: float = 1.0) -> list[TrajectoryGroup]:
    """The groups with :func:`overlong_penalties` added to their rewards (unchanged when ``buffer`` is 0)."""
    if buffer <= 0:
        return list(groups)
    return [replace(g, rewards=[r + p for r, p in zip(g.rewards, overlong_penalties(g, max_tokens, buffer, penalty))])
            for g in groups]


def is_constant(group: TrajectoryGroup) -> bool:
    """All rewards equal: the group's advantages are all zero and it teaches nothing."""
    return len(set(group.rewards)) <= 1


@dataclass
class Sequence:
    """One training sequence: observation and action tokens of one or more merged turns."""

    tokens: list[int]
    logprobs: list[float]  # sampler logprob per token (0 on observation tokens)
    mask: list[float]  # 1 on action tokens
    advantage: float
    group: int  # index of its group in the batch
    runs: list[Run] | None = field(default_factory=list)  # provenance of the tokens (None: a turn had no sequence id)

    def target_mask(self) -> np.ndarray:
        return np.asarray(self.mask[1:], dtype=np.float32)

    def target_logprobs(self) -> np.ndarray:
        return np.asarray(self.logprobs[1:], dtype=np.float32)

    def to_datum(self, advantages: np.ndarray | None = None, *, sequence_ratio_mask: bool = False,
                 provenance: bool = False) -> types.Datum:
        """Next-token datum (position i predicts token i + 1); per-target ``advantages`` default to
        the episode's advantage on action tokens. ``sequence_ratio_mask`` adds the action-token mask
        (``gspo``); ``provenance`` attaches the tokens' provenance (``stable_reinforce``)."""
        if advantages is None:
            advantages = self.target_mask() * np.float32(self.advantage)
        inputs = {
            "target_tokens": types.TensorData.from_numpy(np.asarray(self.tokens[1:], dtype=np.int64)),
            "logprobs": types.TensorData.from_numpy(self.target_logprobs()),
            "advantages": types.TensorData.from_numpy(np.asarray(advantages, dtype=np.float32)),
        }
        if sequence_ratio_mask:
            inputs["sequence_ratio_mask"] = types.TensorData.from_numpy(self.target_mask())
        datum = types.Datum(model_input=types.ModelInput.from_ints(self.tokens[:-1]), loss_fn_inputs=inputs)
        if not provenance:
            return datum
        if self.runs is None:
            raise ValueError("this sequence has no provenance: its sampler returned no sequence ids "
                             "(stable_reinforce needs a sampler made with record_stability_info=True)")
        return with_provenance(datum, self.runs)


def trajectory_sequences(trajectory: Trajectory, advantage: float, group: int = 0) -> list[Sequence]:
    """The sequences of one episode: turns merged while each prompt extends the sequence so far."""
    out: list[Sequence] = []
    current: Sequence | None = None
    for t in trajectory.transitions:
        observation = t.observation.to_ints()
        if current is not None and observation[: len(current.tokens)] == current.tokens:
            new_prompt = observation[len(current.tokens):]
        else:
            current, new_prompt = Sequence([], [], [], advantage, group), observation
            out.append(current)
        if t.sequence_id is None:
            current.runs = None
        elif current.runs is not None:
            current.runs += [Run(t.sequence_id, False, len(observation) - len(new_prompt), len(new_prompt)),
                             Run(t.sequence_id, True, 0, len(t.action))]
        current.tokens += new_prompt + list(t.action)
        current.logprobs += [0.0] * len(new_prompt) + list(t.logprobs)
        current.mask += [0.0] * len(new_prompt) + [1.0] * len(t.action)
    return [s for s in out if len(s.tokens) >= 2 and any(s.mask[1:])]


def groups_to_sequences(groups: Seq[TrajectoryGroup], estimator: AdvantageEstimator = "group_mean"
                        ) -> list[Sequence]:
    """Every episode's sequences, each with its episode's advantage (:func:`batch_advantages`)."""
    out: list[Sequence] = []
    all_advantages = batch_advantages([g.rewards for g in groups], estimator)
    for g, (group, advantages) in enumerate(zip(groups, all_advantages)):
        for trajectory, advantage in zip(group.trajectories, advantages):
            out += trajectory_sequences(trajectory, advantage, g)
    return out


def sequence_sources(groups: Seq[TrajectoryGroup], sequences: Seq[Sequence]) -> list[str]:
    """The prompt source of each sequence (made by :func:`groups_to_sequences` from ``groups``): the
    name of its group's builder."""
    return [groups[s.group].builder.name() for s in sequences]


def reference_for(reference: Reference, source: str | None) -> SamplingClient:
    """The policy that scores a sequence from ``source``: ``reference`` itself, or its entry for the
    source (else its ``"*"`` entry, the policy of every other source)."""
    if not isinstance(reference, Mapping):
        return reference
    if source is not None and source in reference:
        return reference[source]
    if "*" in reference:
        return reference["*"]
    raise ConfigError(f"no reference policy (teacher) for prompt source {source!r}; "
                      f"there is one for: {', '.join(sorted(reference))}")


def logprob_gap(reference: Reference, sequences: Seq[Sequence],
                sources: Seq[str | None] | None = None) -> list[np.ndarray]:
    """Per target token of each sequence: the sampler's logprob minus ``reference``'s (0 on observation
    tokens); with one reference per source, ``sources`` (one per sequence) chooses it. One
    ``compute_logprobs`` request per sequence, all submitted before any is awaited."""
    picked: Seq[str | None] = [None] * len(sequences) if sources is None else sources
    futures = [reference_for(reference, source).compute_logprobs(types.ModelInput.from_ints(s.tokens))
               for s, source in zip(sequences, picked)]
    out = []
    for s, future in zip(sequences, futures):
        ref = np.asarray([0.0 if x is None else x for x in future.result()[1:]], dtype=np.float32)
        out.append((s.target_logprobs() - ref) * s.target_mask())
    return out


def token_advantages(sequences: Seq[Sequence], *, reward_coef: float = 1.0, kl_coef: float = 0.0,
                     gaps: Seq[np.ndarray] | None = None) -> list[np.ndarray]:
    """Per target token of each sequence: ``reward_coef`` times its group-centred advantage on action tokens,
    minus ``kl_coef`` times its logprob gap to a reference (``gaps``, as :func:`logprob_gap` gives them);
    0 on observation tokens."""
    advantages = [s.target_mask() * np.float32(reward_coef * s.advantage) for s in sequences]
    if gaps is None:
        return advantages
    return [a - np.float32(kl_coef) * g for a, g in zip(advantages, gaps)]


def normalize_token_advantages(sequences: Seq[Sequence], advantages: Seq[np.ndarray],
                               normalization: LossNormalization) -> list[np.ndarray]:
    """The per-token advantages scaled so the loss's token sum becomes ``normalization``'s aggregate over
    ``sequences`` (one optimizer step's data; see the module docstring)."""
    if normalization == "sum":
        return list(advantages)
    counts = [float(s.target_mask().sum()) for s in sequences]
    if normalization == "token_mean":
        total = max(sum(counts), 1.0)
        return [a / np.float32(total) for a in advantages]
    if normalization == "sequence_mean":
        return [a / np.float32(max(c, 1.0) * len(sequences)) for a, c in zip(advantages, counts)]
    raise ValueError(f"unknown loss normalization {normalization!r}")
