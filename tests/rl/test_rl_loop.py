"""The RL loop on the tiny model: metrics every step, learning, off-policy staleness, resume, crashes."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch
from safetensors.torch import load_file
from tinker import types

import cookbook
from cookbook.backend.local import checkpoints
from cookbook.rl import train as rl_train
from cookbook.rl.train import RLConfig, train
from cookbook.rl.types import Env, EnvGroupBuilder, Observation, RLDataset, StepResult

PROMPT = [72, 105, 58, 32]  # any few tokens of the byte-level vocabulary


class EvenFirstToken(Env):
    """Reward 1 when the first sampled token is even: learnable, and independent of any format."""

    def __init__(self, crash: bool = False, hang: threading.Event | None = None):
        self.crash, self.hang = crash, hang

    def initial_observation(self):
        return Observation(types.ModelInput.from_ints(PROMPT), stop=[])

    def step(self, action):
        if self.crash:
            raise RuntimeError("env crashed")
        if self.hang is not None:
            self.hang.wait()  # never returns while the test runs
        even = float(action[0] % 2 == 0)
        return StepResult(even, True, metrics={"even": even})


class Group(EnvGroupBuilder):
    def __init__(self, size: int, crash: bool = False, hang: threading.Event | None = None):
        self.size, self.crash, self.hang = size, crash, hang

    def make_envs(self):
        return [EvenFirstToken(self.crash, self.hang if i == 0 else None) for i in range(self.size)]


class Dataset(RLDataset):
    def __init__(self, n: int, groups: int = 4, size: int = 8, crash_batch: int | None = None,
                 hang_batch: int | None = None, hang: threading.Event | None = None):
        self.n, self.groups, self.size, self.crash_batch = n, groups, size, crash_batch
        self.hang_batch, self.hang = hang_batch, hang

    def __len__(self):
        return self.n

    def get_batch(self, index):
        return [Group(self.size, crash=index == self.crash_batch and g == 0,
                      hang=self.hang if index == self.hang_batch and g == 0 else None) for g in range(self.groups)]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return cookbook.service_client(checkpoint_root=tmp_path_factory.mktemp("ckpt"))


def _config(tmp_path, **kw):
    base = dict(lora_rank=8, learning_rate=2e-2, max_tokens=2, log_path=str(tmp_path / "run"), progress=False,
                remove_constant_reward_groups=False, log_groups=1)
    base.update(kw)
    return RLConfig(**base)


def test_rl_raises_the_reward_and_logs_every_step(service, tmp_path):
    result = train(_config(tmp_path, max_steps=12), Dataset(12), service=service)
    rows = result.metrics
    assert [r["step"] for r in rows] == list(range(12))
    for key in ("reward/mean", "env/even", "groups/frac_mixed", "sampler/entropy", "tokens/sampled",
                "sampler/logprob_diff_mean", "sampler/logprob_diff_max", "time/rollout_s", "time/train_s"):
        assert all(key in r for r in rows if r["train/sequences"]), key
    assert max(r["sampler/logprob_diff_max"] for r in rows) < 1e-3  # sampler and trainer agree (CPU fp32)
    first, last = sum(r["reward/mean"] for r in rows[:3]) / 3, sum(r["reward/mean"] for r in rows[-3:]) / 3
    assert last > first + 0.2, (first, last)
    episodes = (tmp_path / "run" / "episodes.txt").read_text()
    assert "=== step 11 ===" in episodes and "reward" in episodes


@pytest.mark.parametrize("loss_fn", ["gspo", "stable_reinforce"])
def test_gspo_and_stable_reinforce_train_on_the_inputs_they_need(service, tmp_path, loss_fn, monkeypatch):
    """``loss_fn=gspo`` sends datums with ``sequence_ratio_mask``; ``stable_reinforce`` samples with
    ``record_stability_info`` and sends datums whose provenance tiles their targets (the backend
    refuses the loss otherwise). Learning is measured on rl/addition (README)."""
    sent: list[types.Datum] = []
    cls = type(service.create_lora_training_client("tiny", rank=8))
    forward_backward = cls.forward_backward

    def spy(self, data, loss_fn_, config=None):
        sent.extend(data)
        return forward_backward(self, data, loss_fn_, config)
    monkeypatch.setattr(cls, "forward_backward", spy)
    result = train(_config(tmp_path, max_steps=2, loss_fn=loss_fn), Dataset(2), service=service)
    assert [r["step"] for r in result.metrics] == [0, 1] and sent
    for d in sent:
        if loss_fn == "gspo":
            assert "sequence_ratio_mask" in d.loss_fn_inputs and not d.loss_fn_input_spans
        else:
            assert "sequence_ratio_mask" not in d.loss_fn_inputs
            assert sum(span.length for span in d.loss_fn_input_spans) == d.model_input.length


def test_off_policy_mode_never_trains_on_samples_more_than_k_steps_stale(service, tmp_path, monkeypatch):
    seen = []
    real = rl_train._sample

    def sample(config, dataset, samplers, step):
        batch = real(config, dataset, samplers, step)
        seen.append((step, batch.version))
        return batch
    monkeypatch.setattr(rl_train, "_sample", sample)
    result = train(_config(tmp_path, max_steps=8, max_staleness=2), Dataset(8), service=service)
    assert [s for s, _ in seen] == list(range(8))
    assert all(0 <= step - version <= 2 for step, version in seen)
    assert any(step - version > 0 for step, version in seen)  # it really ran ahead
    assert [r["sampler/staleness"] for r in result.metrics] == [s - v for s, v in seen]


def test_a_crashing_env_drops_its_group_and_the_run_goes_on(service, tmp_path):
    result = train(_config(tmp_path, max_steps=3), Dataset(3, crash_batch=1), service=service)
    assert [r["rollouts/dropped_groups"] for r in result.metrics] == [0.0, 1.0, 0.0]
    with pytest.raises(RuntimeError, match="env crashed"):
        train(_config(tmp_path, max_steps=3, on_rollout_error="fail", log_path=str(tmp_path / "fail")),
              Dataset(3, crash_batch=1), service=service)


def test_an_env_step_that_never_returns_is_dropped_after_its_timeout_and_the_run_goes_on(service, tmp_path):
    never = threading.Event()  # set only at the end, to let the abandoned thread finish
    try:
        started = time.monotonic()
        result = train(_config(tmp_path, max_steps=3, env_step_timeout=1.0), Dataset(3, hang_batch=1, hang=never),
                       service=service)
        assert [r["rollouts/dropped_groups"] for r in result.metrics] == [0.0, 1.0, 0.0]
        assert [r["step"] for r in result.metrics] == [0, 1, 2] and result.final_state_path
        assert result.metrics[1]["train/sequences"] == 3 * 8  # the batch trained on its other groups
        assert time.monotonic() - started < 120
    finally:
        never.set()


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_continues_from_the_last_checkpoint(service, tmp_path, monkeypatch):
    config = _config(tmp_path, max_steps=6, save_every=2, seed=3)
    calls = {"n": 0}
    real = rl_train._train_on

    def crash_on_fifth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise Interrupt()
        return real(*args, **kwargs)
    monkeypatch.setattr(rl_train, "_train_on", crash_on_fifth)
    with pytest.raises(Interrupt):
        train(config, Dataset(6), service=service)
    monkeypatch.setattr(rl_train, "_train_on", real)
    resumed = train(config, Dataset(6), service=service)
    assert resumed.resumed_from == 4
    assert [r["step"] for r in resumed.metrics] == list(range(6))
    records = [json.loads(line) for line in (tmp_path / "run" / "checkpoints.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6] and records[-1]["final"]
    weights = load_file(checkpoints.resolve(resumed.final_state_path, service.checkpoint_root) / "adapter.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_start_from_a_checkpoint_uses_its_weights(service, tmp_path):
    first = train(_config(tmp_path, max_steps=2, log_path=str(tmp_path / "a")), Dataset(2), service=service)
    second = train(_config(tmp_path, max_steps=1, log_path=str(tmp_path / "b"), learning_rate=0.0,
                           load_checkpoint_path=first.final_state_path), Dataset(1), service=service)
    a = load_file(checkpoints.resolve(first.final_state_path, service.checkpoint_root) / "adapter.safetensors")
    b = load_file(checkpoints.resolve(second.final_state_path, service.checkpoint_root) / "adapter.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # lr 0: the start weights kept
