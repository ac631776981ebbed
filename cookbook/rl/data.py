"""From sampled episodes to training data: group-centred advantages and Datums.

Token in, token out: the Datums are built from the exact tokens that were sampled and the prompts
they were sampled from, never from re-tokenised text. A multi-turn episode becomes one sequence
when each turn's prompt extends the previous prompt plus its action (the usual chat case), and
starts a new sequence wherever it does not. Action tokens carry the sampler's logprobs and the
episode's advantage; observation tokens carry advantage 0, so no loss touches them. The mask of
action tokens stays on this side (:class:`Sequence`), since the losses take no mask input.

:func:`logprob_gap` scores sequences with another policy (``compute_logprobs``): the per-token gap
between the sampler and that policy is the RL loop's KL penalty (on-policy distillation's reverse
KL, with the teacher as that policy); :func:`token_advantages` combines it with the rewards.

Each sequence also keeps its provenance (:mod:`cookbook.rl.provenance`: which sampled sequence's
prompt or sampled tokens each token is), when the sampler named its sequences; ``to_datum`` attaches
it for ``stable_reinforce`` and adds the ``sequence_ratio_mask`` (the action tokens) ``gspo`` needs.

May import ``cookbook.rl.types``, ``cookbook.rl.provenance``, ``cookbook.primitives`` and ``tinker``.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass, field

import numpy as np
from tinker import types

from cookbook.primitives import SamplingClient
from cookbook.rl.provenance import Run, with_provenance
from cookbook.rl.types import Trajectory, TrajectoryGroup


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


def groups_to_sequences(groups: Seq[TrajectoryGroup], *, normalize_std: bool = False) -> list[Sequence]:
    """Every episode's sequences, each with its group-centred advantage."""
    out: list[Sequence] = []
    for g, group in enumerate(groups):
        advantages = group_advantages(group.rewards, normalize_std=normalize_std)
        for trajectory, advantage in zip(group.trajectories, advantages):
            out += trajectory_sequences(trajectory, advantage, g)
    return out


def logprob_gap(reference: SamplingClient, sequences: Seq[Sequence]) -> list[np.ndarray]:
    """Per target token of each sequence: the sampler's logprob minus ``reference``'s (0 on observation
    tokens). One ``compute_logprobs`` request per sequence, all submitted before any is awaited."""
    futures = [reference.compute_logprobs(types.ModelInput.from_ints(s.tokens)) for s in sequences]
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
