"""The RL loop with ``backend=tinker base_url=...``: rollouts, the KL reference and training through the server."""

from __future__ import annotations

import numpy as np
import pytest
from tinker import types
from tinker_flows import API_KEY

from cookbook.rl.train import RLConfig, train
from cookbook.rl.types import Env, EnvGroupBuilder, Observation, RLDataset, StepResult


class EvenFirstToken(Env):
    def initial_observation(self):
        return Observation(types.ModelInput.from_ints([72, 105, 58, 32]), stop=[])

    def step(self, action):
        return StepResult(float(action[0] % 2 == 0), True)


class Group(EnvGroupBuilder):
    def make_envs(self):
        return [EvenFirstToken() for _ in range(4)]


class Dataset(RLDataset):
    def __len__(self):
        return 3

    def get_batch(self, index):
        return [Group() for _ in range(3)]


@pytest.mark.parametrize("loss_fn", ["importance_sampling", "stable_reinforce"])
def test_rl_loop_runs_through_the_server(server, tmp_path, monkeypatch, loss_fn):
    """stable_reinforce: samplers record stability info on the server and the datums' provenance
    names the sequence ids the SDK got back."""
    monkeypatch.setenv("TINKER_API_KEY", API_KEY)
    config = RLConfig(loss_fn=loss_fn, lora_rank=8, learning_rate=2e-2, max_tokens=2, max_steps=3,
                      log_path=str(tmp_path / "rl"),
                      progress=False, remove_constant_reward_groups=False, kl_penalty_coef=0.01,
                      backend="tinker", base_url=server.url)
    result = train(config, Dataset())
    assert result.final_state_path.startswith("tinker://")
    assert [r["step"] for r in result.metrics] == [0, 1, 2]
    assert all(r["sampler/logprob_diff_max"] < 1e-3 for r in result.metrics)  # sampler and trainer agree over HTTP
    assert all(np.isfinite(r["kl/sampler_reference"]) for r in result.metrics)  # compute_logprobs of the base model
