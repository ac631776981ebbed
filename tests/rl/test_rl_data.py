"""Advantages and Datums from episodes: centring, masks, sampler logprobs, multi-turn merging."""

from __future__ import annotations

import numpy as np
import pytest
from tinker import types

from cookbook.rl.data import group_advantages, groups_to_sequences, is_constant, trajectory_sequences
from cookbook.rl.types import Trajectory, TrajectoryGroup, Transition


def _turn(observation, action, logprobs, reward=0.0, done=True):
    return Transition(types.ModelInput.from_ints(observation), action, logprobs, "stop", reward, done)


def test_advantages_are_centred_per_group_and_optionally_std_normalised():
    assert group_advantages([1.0, 0.0, 0.0, 1.0]) == [0.5, -0.5, -0.5, 0.5]
    assert group_advantages([2.0, 2.0]) == [0.0, 0.0]
    normalised = group_advantages([3.0, 1.0], normalize_std=True)
    assert normalised == pytest.approx([1.0, -1.0], abs=1e-5)


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
