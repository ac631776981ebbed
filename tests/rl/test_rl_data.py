"""Advantages and Datums from episodes: centring, masks, sampler logprobs, multi-turn merging."""

from __future__ import annotations

import numpy as np
import pytest
from tinker import types

from cookbook.rl.data import (
    batch_advantages,
    group_advantages,
    groups_to_sequences,
    is_constant,
    normalize_token_advantages,
    overlong_penalties,
    trajectory_sequences,
    with_overlong_penalty,
)
from cookbook.rl.types import Trajectory, TrajectoryGroup, Transition


def _turn(observation, action, logprobs, reward=0.0, done=True):
    return Transition(types.ModelInput.from_ints(observation), action, logprobs, "stop", reward, done)


def test_advantages_are_centred_per_group_and_optionally_std_normalised():
    assert group_advantages([1.0, 0.0, 0.0, 1.0]) == [0.5, -0.5, -0.5, 0.5]
    assert group_advantages([2.0, 2.0]) == [0.0, 0.0]
    normalised = group_advantages([3.0, 1.0], "group_std")
    assert normalised == pytest.approx([1.0, -1.0], abs=1e-5)


def test_advantage_estimators_against_their_definitions():
    rewards = [[1.0, 0.0, 0.0, 1.0, 1.0], [3.0, 0.0], [2.0, 2.0, 2.0]]
    rng = np.random.default_rng(0)
    for estimator in ("group_mean", "group_std", "rloo", "reinforce_pp"):
        got = batch_advantages(rewards, estimator)
        flat = [r for g in rewards for r in g]
        for g, (group, advantages) in enumerate(zip(rewards, got)):
            for i, (r, a) in enumerate(zip(group, advantages)):
                mean = sum(group) / len(group)
                if estimator == "group_mean":
                    expected = r - mean
                elif estimator == "group_std":
                    std = (sum((x - mean) ** 2 for x in group) / len(group)) ** 0.5
                    expected = (r - mean) / (std + 1e-6)
                elif estimator == "rloo":  # the reward minus the mean of the group's other rewards
                    others = group[:i] + group[i + 1:]
                    expected = r - sum(others) / len(others)
                else:  # normalised over the whole batch
                    expected = (r - np.mean(flat)) / (np.std(flat) + 1e-6)
                assert a == pytest.approx(expected, abs=1e-9), (estimator, g, i)
    assert batch_advantages([[5.0]], "rloo") == [[0.0]]  # no other episode to compare with
    shifted = batch_advantages([list(rng.normal(size=4)) for _ in range(3)], "reinforce_pp")
    flat = np.concatenate(shifted)
    assert flat.mean() == pytest.approx(0, abs=1e-9) and flat.std() == pytest.approx(1, abs=1e-5)


def test_loss_normalization_scales_each_token_as_named():
    seqs = [trajectory_sequences(Trajectory([_turn([1, 2], [3] * n, [-0.1] * n)]), advantage=1.0)[0]
            for n in (1, 3)]
    advantages = [s.target_mask() for s in seqs]  # 1 on each action token: the loss's token sum counts tokens
    assert [a.sum() for a in normalize_token_advantages(seqs, advantages, "sum")] == [1, 3]
    token_mean = normalize_token_advantages(seqs, advantages, "token_mean")
    assert [float(a.sum()) for a in token_mean] == pytest.approx([1 / 4, 3 / 4])  # every token weighs 1/4
    sequence_mean = normalize_token_advantages(seqs, advantages, "sequence_mean")
    assert [float(a.sum()) for a in sequence_mean] == pytest.approx([1 / 2, 1 / 2])  # every sequence weighs 1/2


def test_overlong_penalty_is_dapos_soft_punishment():
    lengths = [2, 6, 7, 8, 10]  # max_tokens 10, buffer 4: free up to 6 tokens, -1 at 10
    group = TrajectoryGroup(None, [Trajectory([_turn([1], [5] * n, [-0.1] * n)]) for n in lengths], [1.0] * 5)
    assert overlong_penalties(group, 10, 4) == pytest.approx([0, 0, -0.25, -0.5, -1.0])
    assert overlong_penalties(group, 10, 4, penalty=0.5)[-1] == pytest.approx(-0.5)
    [penalised] = with_overlong_penalty([group], 10, 4)
    assert penalised.rewards == pytest.approx([1, 1, 0.75, 0.5, 0.0]) and group.rewards == [1.0] * 5
    assert with_overlong_penalty([group], 10, 0)[0] is group


def test_single_turn_datum_masks_the_prompt_and_carries_sampler_logprobs():
    [seq] = trajectory_sequences(Trajectory([_turn([1, 2, 3], [4, 5], [-0.1, -0.2], reward=1.0)]), advantage=0.75)
    assert seq.tokens == [1, 2, 3, 4, 5]
    datum = seq.to_datum()
    assert datum.model_input.to_ints() == [1, 2, 3, 4]
    x = {k: v.to_numpy() for k, v in datum.loss_fn_inputs.items()}
    assert x["target_tokens"].tolist() == [2, 3, 4, 5]
    np.testing.assert_allclose(x["logprobs"], [0, 0, -0.1, -0.2], atol=1e-7)
    np.testing.assert_allclose(x["advantages"], [0, 0, 0.75, 0.75])
    assert seq.target_mask().tolist() == [0, 0, 1, 1]
    assert set(x) == {"target_tokens", "logprobs", "advantages"}  # only what the losses read


def test_turns_that_extend_the_previous_prompt_merge_into_one_sequence():
    turns = [_turn([1, 2], [3, 4], [-0.3, -0.4], done=False),
             _turn([1, 2, 3, 4, 9, 9], [5], [-0.5], reward=1.0)]  # env appended [9, 9] (e.g. a user reply)
    [seq] = trajectory_sequences(Trajectory(turns), advantage=-1.0)
    assert seq.tokens == [1, 2, 3, 4, 9, 9, 5]
    assert seq.mask == [0, 0, 1, 1, 0, 0, 1]
    assert seq.logprobs == [0, 0, -0.3, -0.4, 0, 0, -0.5]
    x = seq.to_datum().loss_fn_inputs
    np.testing.assert_allclose(x["advantages"].to_numpy(), [0, -1, -1, 0, 0, -1])


def test_a_turn_whose_prompt_does_not_extend_the_sequence_starts_a_new_one():
    turns = [_turn([1, 2], [3], [-0.3], done=False), _turn([7, 8], [4], [-0.4])]  # e.g. context was rewritten
    seqs = trajectory_sequences(Trajectory(turns), advantage=0.5)
    assert [s.tokens for s in seqs] == [[1, 2, 3], [7, 8, 4]]
    assert [s.mask for s in seqs] == [[0, 0, 1], [0, 0, 1]]


def test_groups_to_sequences_uses_each_groups_own_mean():
    def group(rewards):
        trajectories = [Trajectory([_turn([1], [2], [-0.1], reward=r)]) for r in rewards]
        return TrajectoryGroup(builder=None, trajectories=trajectories, rewards=list(rewards))
    groups = [group([1.0, 0.0]), group([1.0, 1.0, 1.0]), group([0.0, 0.0, 3.0])]
    seqs = groups_to_sequences(groups)
    assert [s.advantage for s in seqs] == [0.5, -0.5, 0.0, 0.0, 0.0, -1.0, -1.0, 2.0]
    assert [s.group for s in seqs] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert [is_constant(g) for g in groups] == [False, True, False]


def test_datums_carry_the_provenance_of_their_tokens_and_gspo_mask():
    """Two merged turns: the datum's input and targets are tiled by the sampled sequences' prompt
    and sampled runs (shifted by one for the targets); gspo's mask is the action tokens."""
    turns = [Transition(types.ModelInput.from_ints([1, 2]), [3, 4], [-0.3, -0.4], "stop", 0.0, False,
                        sequence_id="s1"),
             Transition(types.ModelInput.from_ints([1, 2, 3, 4, 9]), [5], [-0.5], "stop", 1.0, True,
                        sequence_id="s2")]
    [seq] = trajectory_sequences(Trajectory(turns), advantage=1.0)
    datum = seq.to_datum(provenance=True, sequence_ratio_mask=True)
    spans = [(type(s).__name__, s.sequence_id, s.offset, s.length) for s in datum.model_input_spans]
    assert spans == [("PromptProvenanceSpan", "s1", 0, 2), ("SampledProvenanceSpan", "s1", 0, 2),
                     ("PromptProvenanceSpan", "s2", 4, 1)]  # input = tokens[:-1]: s2's sampled token is not in it
    targets = [(type(s).__name__, s.sequence_id, s.offset, s.length) for s in datum.loss_fn_input_spans]
    assert targets == [("PromptProvenanceSpan", "s1", 1, 1), ("SampledProvenanceSpan", "s1", 0, 2),
                       ("PromptProvenanceSpan", "s2", 4, 1), ("SampledProvenanceSpan", "s2", 0, 1)]
    assert sum(s.length for s in datum.loss_fn_input_spans) == len(seq.tokens) - 1
    np.testing.assert_array_equal(datum.loss_fn_inputs["sequence_ratio_mask"].to_numpy(), [0, 1, 1, 0, 1])
    assert "sequence_ratio_mask" not in seq.to_datum().loss_fn_inputs
    unnamed = trajectory_sequences(Trajectory([_turn([1, 2], [3], [-0.1])]), advantage=1.0)[0]
    with pytest.raises(ValueError, match="record_stability_info"):
        unnamed.to_datum(provenance=True)
