"""Rollouts: multi-turn episodes, budgets, async and sync envs, and the error policies."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from tinker import types

from cookbook.rl.rollouts import RolloutSettings, rollout_batch
from cookbook.rl.types import Env, EnvGroupBuilder, Observation, StepResult


class Sampler:
    """Replies to a prompt of n tokens with [n, n + 1] (each of ``num_samples`` times); records requests."""

    def __init__(self):
        self.requests = 0
        self.log: list[tuple[list[int], int, int | None]] = []  # (prompt, num_samples, seed)

    def sample(self, prompt, num_samples, sampling_params):
        self.requests += 1
        self.log.append((prompt.to_ints(), num_samples, sampling_params.seed))
        n = prompt.length
        seq = types.SampledSequence(stop_reason="stop", sequence_id="x", tokens_np=np.array([n, n + 1], np.int32),
                                    logprobs_np=np.array([-0.5, -0.25], np.float32))

        class Future:
            def result(self, timeout=None):
                return types.SampleResponse(sequences=[seq] * num_samples)

            async def result_async(self, timeout=None):
                return self.result()
        return Future()


class CountingEnv(Env):
    """Episode of ``turns`` turns; each step appends [0] to the conversation; reward 1 at the end."""

    def __init__(self, turns: int, fail_at: int | None = None, is_async: bool = False):
        self.turns, self.fail_at, self.is_async, self.tokens, self.done_turns = turns, fail_at, is_async, [1], 0

    def initial_observation(self):
        return Observation(types.ModelInput.from_ints(self.tokens), stop=[99])

    def _step(self, action):
        self.done_turns += 1
        if self.done_turns == self.fail_at:
            raise RuntimeError("env crashed")
        self.tokens = self.tokens + action + [0]
        done = self.done_turns == self.turns
        return StepResult(1.0 if done else 0.0, done, None if done else self.initial_observation(),
                          metrics={"turn": float(self.done_turns)})

    def step(self, action):
        if self.is_async:
            async def run():
                return self._step(action)
            return run()
        return self._step(action)


class Group(EnvGroupBuilder):
    def __init__(self, envs):
        self.envs = envs
        self.calls = 0

    def make_envs(self):
        self.calls += 1
        return self.envs() if callable(self.envs) else self.envs


def test_multi_turn_episodes_keep_each_turns_prompt_and_sampled_tokens():
    sampler = Sampler()
    group = Group([CountingEnv(3), CountingEnv(3, is_async=True)])
    groups, dropped = rollout_batch([group], sampler, RolloutSettings())
    assert dropped == 0 and sampler.requests == 5  # the shared first prompt is one request for both
    for trajectory in groups[0].trajectories:
        assert [t.observation.to_ints() for t in trajectory.transitions] == [[1], [1, 1, 2, 0], [1, 1, 2, 0, 4, 5, 0]]
        assert [t.action for t in trajectory.transitions] == [[1, 2], [4, 5], [7, 8]]
        assert trajectory.transitions[-1].done and trajectory.total_reward == 1.0
    assert groups[0].rewards == [1.0, 1.0]


def test_a_groups_shared_first_prompt_is_one_seeded_request_and_other_turns_their_own():
    sampler = Sampler()
    group = Group([CountingEnv(2), CountingEnv(2), CountingEnv(2)])
    groups, _ = rollout_batch([group], sampler, RolloutSettings(seed=7))
    first, *later = sampler.log
    assert first[:2] == ([1], 3) and first[2] is not None
    assert len(later) == 3 and all(n == 1 for _, n, _ in later)
    assert len({seed for *_, seed in sampler.log}) == 4  # every request its own seed
    assert [len(t.transitions) for t in groups[0].trajectories] == [2, 2, 2]
    rerun = Sampler()
    rollout_batch([Group([CountingEnv(2), CountingEnv(2), CountingEnv(2)])], rerun, RolloutSettings(seed=7))
    assert sorted(rerun.log) == sorted(sampler.log)

    class Opening(CountingEnv):  # envs that open with different prompts: a request each
        def __init__(self, first: int):
            super().__init__(1)
            self.tokens = [first]
    distinct = Sampler()
    rollout_batch([Group([Opening(1), Opening(2)])], distinct, RolloutSettings())
    assert sorted((p, n) for p, n, _ in distinct.log) == [([1], 1), ([2], 1)]


def test_a_response_with_too_few_samples_fails_the_group():
    class Short(Sampler):
        def sample(self, prompt, num_samples, sampling_params):
            return super().sample(prompt, 1, sampling_params)
    with pytest.raises(RuntimeError, match="2 samples.*1"):
        rollout_batch([Group([CountingEnv(1), CountingEnv(1)])], Short(), RolloutSettings(on_error="fail"))


def test_turn_and_token_budgets_end_episodes():
    groups, _ = rollout_batch([Group([CountingEnv(10)])], Sampler(), RolloutSettings(max_turns=2))
    assert len(groups[0].trajectories[0].transitions) == 2
    groups, _ = rollout_batch([Group([CountingEnv(10)])], Sampler(), RolloutSettings(max_episode_tokens=5))
    assert len(groups[0].trajectories[0].transitions) == 2  # the third prompt would have 7 tokens


def test_a_crashing_env_drops_its_group_and_the_others_go_on():
    ok, broken = Group([CountingEnv(2)]), Group([CountingEnv(2), CountingEnv(2, fail_at=2)])
    groups, dropped = rollout_batch([ok, broken, ok], Sampler(), RolloutSettings(on_error="drop"))
    assert dropped == 1 and len(groups) == 2 and all(g.builder is ok for g in groups)


def test_retry_runs_the_group_again_and_fail_raises():
    attempts = {"n": 0}

    def envs():
        attempts["n"] += 1
        return [CountingEnv(2, fail_at=1 if attempts["n"] == 1 else None)]  # fails once, then works
    groups, dropped = rollout_batch([Group(envs)], Sampler(), RolloutSettings(on_error="retry", max_retries=1))
    assert dropped == 0 and attempts["n"] == 2 and groups[0].rewards == [1.0]
    with pytest.raises(RuntimeError, match="env crashed"):
        rollout_batch([Group([CountingEnv(2, fail_at=1)])], Sampler(), RolloutSettings(on_error="fail"))


class HangingEnv(CountingEnv):
    """A one-turn env whose step never returns: blocking (a plain method) or awaiting forever (async)."""

    def __init__(self, is_async: bool, release: threading.Event):
        super().__init__(1, is_async=is_async)
        self.release = release

    def step(self, action):
        if self.is_async:
            async def forever():
                await asyncio.Event().wait()
            return forever()
        self.release.wait()
        return self._step(action)


@pytest.mark.parametrize("is_async", [False, True])
def test_an_env_step_that_never_returns_times_out_and_its_group_is_dropped(is_async):
    release = threading.Event()
    try:
        ok, hung = Group([CountingEnv(2)]), Group([CountingEnv(2), HangingEnv(is_async, release)])
        started = time.monotonic()
        groups, dropped = rollout_batch([ok, hung, ok], Sampler(), RolloutSettings(env_step_timeout=0.3))
        assert dropped == 1 and [g.builder for g in groups] == [ok, ok]
        assert time.monotonic() - started < 5
        with pytest.raises(TimeoutError, match="step did not return within 0.3 s"):
            rollout_batch([hung], Sampler(), RolloutSettings(env_step_timeout=0.3, on_error="fail"))
        groups, dropped = rollout_batch([hung], Sampler(), RolloutSettings(env_step_timeout=0.3, on_error="retry"))
        assert dropped == 1 and hung.calls == 4  # tried twice by the retry policy (plus the two runs above)
    finally:
        release.set()


def test_a_rollout_over_its_time_limit_is_dropped():
    class Slow(CountingEnv):
        async def initial_observation(self):
            await asyncio.sleep(30)
            return super().initial_observation()

    groups, dropped = rollout_batch([Group([CountingEnv(1)]), Group([Slow(1)])], Sampler(),
                                    RolloutSettings(rollout_timeout=0.3))
    assert dropped == 1 and len(groups) == 1
    with pytest.raises(TimeoutError, match="took over 0.3 s"):
        rollout_batch([Group([Slow(1)])], Sampler(), RolloutSettings(rollout_timeout=0.3, on_error="fail"))
