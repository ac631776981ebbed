"""From sampled episodes to training data: group-centred advantages and Datums.

Token in, token out: the Datums are built from the exact tokens that were sampled and the prompts
they were sampled from, never from re-tokenised text. A multi-turn episode becomes one sequence
when each turn's prompt extends the previous prompt plus its action (the usual chat case), and
starts a new sequence wherever it does not. Action tokens carry the sampler's logprobs and the
episode's advantage; observation tokens carry advantage 0, so no loss touches them. The mask of
action tokens stays on this side (:class:`Sequence`), since the losses take no mask input.

:func:`logprob_gap` scores sequences with another policy (``compute_logprobs``): the per-token gap
between the sampler and that policy is the RL loop's KL penalty (on-policy distillation's reverse
KL, with the teacher as that policy); :func:`token_advantages` combines it with the rewards. A
:data:`Reference` is one policy, or one per prompt source (the name of the group builder that made
the episode: :func:`sequence_sources`), e.g. a teacher per source in multi-teacher distillation.

May import ``cookbook.rl.types``, ``cookbook.primitives`` and ``tinker``.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from tinker import types

from cookbook.errors import ConfigError
from cookbook.primitives import SamplingClient
from cookbook.rl.types import Trajectory, TrajectoryGroup

# The policy sequences are scored against: one for all, or one per prompt source (builder name)
Reference: TypeAlias = SamplingClient | Mapping[str, SamplingClient]


def group_advantages(rewards: Seq[float], *, normalize_std: bool = False, eps: float = 1e-6) -> list[float]:
    """Each reward minus its group's mean (divided by the group's std when ``normalize_std``)."""
    r = np.asarray(rewards, dtype=np.float64)
    centred = r - r.mean()
    if normalize_std:
        centred = centred / (r.std() + eps)
    return centred.tolist()


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

    def target_mask(self) -> np.ndarray:
        return np.asarray(self.mask[1:], dtype=np.float32)

    def target_logprobs(self) -> np.ndarray:
        return np.asarray(self.logprobs[1:], dtype=np.float32)

    def to_datum(self, advantages: np.ndarray | None = None) -> types.Datum:
        """Next-token datum (position i predicts token i + 1); per-target ``advantages`` default to
        the episode's advantage on action tokens."""
        if advantages is None:
            advantages = self.target_mask() * np.float32(self.advantage)
        return types.Datum(
            model_input=types.ModelInput.from_ints(self.tokens[:-1]),
            loss_fn_inputs={
                "target_tokens": types.TensorData.from_numpy(np.asarray(self.tokens[1:], dtype=np.int64)),
                "logprobs": types.TensorData.from_numpy(self.target_logprobs()),
                "advantages": types.TensorData.from_numpy(np.asarray(advantages, dtype=np.float32)),
            },
        )


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
        current.tokens += new_prompt + list(t.action)
        current.logprobs += [0.0] * len(new_prompt) + list(t.logprobs)
        current.mask += [0.0] * len(new_prompt) + [1.0] * len(t.action)
    return [s for s in out if len(s.tokens) >= 2 and any(s.mask[1:])]


def groups_to_sequences(groups: Seq[TrajectoryGroup], *, normalize_std: bool = False) -> list[Sequence]:
    """Every episode's sequences, each with its group-centred advantage."""
    out: list[Sequence] = []
    for g, group in enumerate(groups):
        advantages = group_advantages(group.rewards, normalize_std=normalize_std)
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
