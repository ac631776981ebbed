"""DAPO's pieces in the RL loop: dynamic sampling of mixed groups, the presets, the options' checks."""

from __future__ import annotations

import numpy as np
import pytest
from tinker import types

from cookbook.errors import ConfigError
from cookbook.recipe_cli import RecipeArgumentError, parse_config
from cookbook.rl import train as rl_train
from cookbook.rl.train import RLConfig
from cookbook.rl.types import Env, EnvGroupBuilder, Observation, RLDataset, StepResult
from recipes.rl.addition import Config as AdditionConfig


class Sampler:
    def sample(self, prompt, num_samples, sampling_params):
        seq = types.SampledSequence(stop_reason="stop", sequence_id="x", tokens_np=np.array([5], np.int32),
                                    logprobs_np=np.array([-0.5], np.float32))

        class Future:
            def result(self, timeout=None):
                return types.SampleResponse(sequences=[seq] * num_samples)

            async def result_async(self, timeout=None):
                return self.result()
        return Future()


class Fixed(Env):
    def __init__(self, reward: float):
        self.reward = reward

    def initial_observation(self):
        return Observation(types.ModelInput.from_ints([1, 2]), stop=[])

    def step(self, action):
        return StepResult(self.reward, True)


class Group(EnvGroupBuilder):
    def __init__(self, name: str, rewards: list[float]):
        self.label, self.rewards = name, rewards

    def make_envs(self):
        return [Fixed(r) for r in self.rewards]

    def name(self):
        return self.label


class Dataset(RLDataset):
    """Batch i: four groups, 'm' mixed (rewards 0 and 1) or 'c' constant, as the layout says."""

    LAYOUT = ["cmcc", "mmcm", "mmmm"]

    def __len__(self):
        return len(self.LAYOUT)

    def get_batch(self, index):
        return [Group(f"{index}.{g}{kind}", [0.0, 1.0] if kind == "m" else [1.0, 1.0])
                for g, kind in enumerate(self.LAYOUT[index])]


class Samplers:
    def for_step(self, step):
        return 0, Sampler()


def _batch(**options):
    config = RLConfig(**options)
    return rl_train._sample(config, Dataset(), Samplers(), 0), config


def test_dynamic_sampling_rolls_out_more_groups_until_the_batch_is_all_mixed():
    batch, _ = _batch(dynamic_sampling_rounds=2)
    assert [g.builder.name() for g in batch.groups] == ["0.1m", "1.0m", "1.1m", "1.3m"]
    assert (batch.sampled, batch.rounds) == (8, 2)
    batch, _ = _batch(dynamic_sampling_rounds=1)  # one more round fills it here
    assert [g.builder.name() for g in batch.groups] == ["0.1m", "1.0m", "1.1m", "1.3m"]
    batch, _ = _batch()  # off: the batch as dealt
    assert [g.builder.name() for g in batch.groups] == ["0.0c", "0.1m", "0.2c", "0.3c"] and batch.rounds == 1


def test_dynamic_sampling_stops_after_its_rounds():
    class Constant(Dataset):
        LAYOUT = ["cccc", "cccc", "cccm"]
    config = RLConfig(dynamic_sampling_rounds=1)
    batch = rl_train._sample(config, Constant(), Samplers(), 0)
    assert batch.groups == [] and (batch.sampled, batch.rounds) == (8, 2)


def test_the_dapo_preset_sets_its_pieces_on_any_rl_recipe():
    config = parse_config(AdditionConfig, ["preset=dapo"], group="rl")
    assert (config.loss_fn, config.clip_low_threshold, config.clip_high_threshold) == ("ppo", 0.8, 1.28)
    assert (config.dynamic_sampling_rounds, config.loss_normalization, config.overlong_buffer) == (3, "token_mean", 0.2)
    assert config.advantage_estimator == "group_std"
    for preset, estimator in (("grpo", "group_std"), ("dr_grpo", "group_mean"), ("rloo", "rloo"),
                              ("reinforce_pp", "reinforce_pp")):
        assert parse_config(AdditionConfig, [f"preset={preset}"], group="rl").advantage_estimator == estimator
    with pytest.raises(RecipeArgumentError, match="advantage_estimator"):
        parse_config(AdditionConfig, ["advantage_estimator=ppo"], group="rl")
    with pytest.raises((ConfigError, RecipeArgumentError), match="overlong_buffer"):
        parse_config(AdditionConfig, ["overlong_buffer=2"], group="rl")


def test_the_overlong_penalty_and_token_mean_reach_the_trained_advantages(monkeypatch):
    seen = {}

    class Client:
        def forward_backward(self, data, loss_fn, config=None):
            seen["advantages"] = [d.loss_fn_inputs["advantages"].to_numpy() for d in data]

            class Out:
                def result(self):
                    return types.ForwardBackwardOutput(loss_fn_output_type="x", metrics={"loss:sum": 0.0},
                                                       loss_fn_outputs=[{"logprobs": types.TensorData.from_numpy(
                                                           np.zeros(len(d.model_input.to_ints()), np.float32))}
                                                           for d in data])
            return Out()

        def optim_step(self, adam):
            class Out:
                def result(self):
                    return types.OptimStepResponse(metrics={})
            return Out()

    batch, config = _batch(max_tokens=1, overlong_buffer=1.0, loss_normalization="token_mean",
                           remove_constant_reward_groups=False)
    row = rl_train.train_step(config, Client(), batch, None, total=1)
    # every 1-token reply fills max_tokens: -1 each; the groups' advantages are unchanged by a shared shift
    assert row["reward/overlong_penalty"] == pytest.approx(-1.0)
    tokens = 4 * 2  # one action token per episode
    flat = np.concatenate([a[-1:] for a in seen["advantages"]])  # each sequence's one action token
    assert sorted(np.round(flat * tokens, 6).tolist()) == [-0.5] + [0.0] * 6 + [0.5]
