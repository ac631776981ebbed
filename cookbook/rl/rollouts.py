"""Rollouts: run episodes through a sampling client, all groups of a batch concurrently.

Every sampling request of every episode is in flight at once (one asyncio task per episode), so
a backend that batches concurrent requests (the local one does) decodes them together. Budgets:
``max_tokens`` per turn, ``max_turns`` and ``max_episode_tokens`` per episode (an episode that
runs out ends there, its last reward standing). An exception in an env or a sampling request
follows ``on_error``: ``fail`` (raise), ``retry`` (run the whole group again, up to
``max_retries`` times, then drop it) or ``drop`` (leave the group out of the batch).

Timeouts (off by default): ``env_step_timeout`` bounds each call of an env's ``initial_observation``
and ``step``, ``rollout_timeout`` a group's whole rollout (all its episodes, sampling included).
Past either, the group fails with a ``TimeoutError`` and ``on_error`` decides, so a hung env is
dropped (or retried) and the batch goes on without it. With ``env_step_timeout`` a plain (not
``async``) env method runs in a daemon thread of its own, since a call that never returns cannot
be interrupted: it is abandoned, and never holds up the rollouts or the process's exit. (Env
methods of one episode then run in worker threads: envs that share state across episodes must
guard it. An ``async`` method is awaited in the event loop: it must not block it.)

Every reply is sampled through :class:`cookbook.completers.TokenCompleter`, with a seed derived from
``RolloutSettings.seed`` (the RL loop's: run seed and step) and where the reply sits, so a batch
samples the same replies whatever order the requests run in: a rerun and a resumed run sample
exactly what the first run sampled. When a group's envs all open with the same prompt (one problem,
several answers), their first replies are one request for ``group_size`` samples seeded by (group,
attempt): one prefill and one round trip instead of one per episode, which matters most through a
server. Every other reply is its own request, seeded by (group, attempt, episode, turn).

May import ``cookbook.rl.types``, ``cookbook.completers``, ``cookbook.seeds``, ``cookbook.primitives``
and ``tinker``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cookbook import seeds
from cookbook.completers import TokenCompleter, TokensWithLogprobs
from cookbook.primitives import SamplingClient
from cookbook.rl.types import Env, EnvGroupBuilder, Observation, Trajectory, TrajectoryGroup, Transition

logger = logging.getLogger(__name__)

OnError = Literal["fail", "retry", "drop"]
Start = tuple[Observation, TokensWithLogprobs | None]  # an episode's initial observation, its first reply if sampled


@dataclass(frozen=True)
class RolloutSettings:
    max_tokens: int = 64  # per turn
    temperature: float = 1.0
    max_turns: int = 16
    max_episode_tokens: int | None = None  # observation + action tokens of the last turn's prompt
    on_error: OnError = "drop"
    max_retries: int = 1
    env_step_timeout: float | None = None  # seconds an env's initial_observation / step may take (None: no limit)
    rollout_timeout: float | None = None  # seconds a group's rollout may take (None: no limit)
    seed: int | None = None  # the batch's seed: every reply gets its own, derived from it (None: unseeded)


def _seed(settings: RolloutSettings, *indices: int) -> int | None:
    """The sampling seed of one request: (batch seed, group, attempt, episode, turn) mixed; None unseeded."""
    return None if settings.seed is None else seeds.mix(settings.seed, *indices)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def _env_call(fn: Callable[..., Any], timeout: float | None, *args: Any) -> Any:
    """``fn(*args)``, plain or ``async``, within ``timeout`` seconds (see the module docstring)."""
    if timeout is None:
        return await _maybe_await(fn(*args))
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        value = await asyncio.wait_for(
            fn(*args) if inspect.iscoroutinefunction(fn) else _in_daemon_thread(fn, *args), timeout)
        return await asyncio.wait_for(value, timeout) if inspect.isawaitable(value) else value
    except TimeoutError:
        raise TimeoutError(f"{name} did not return within {timeout} s") from None


def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """A future of ``fn(*args)`` run in a daemon thread (abandoned if nobody waits for it any more)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def run() -> None:
        try:
            value, exc = fn(*args), None
        except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
            value, exc = None, error
        try:
            loop.call_soon_threadsafe(settle, value, exc)
        except RuntimeError:  # the event loop has closed: nobody is waiting
            pass
    threading.Thread(target=run, name="cookbook-env-call", daemon=True).start()
    return future


async def run_episode(env: Env, sampler: SamplingClient, settings: RolloutSettings,
                      where: tuple[int, ...] = (), start: Start | None = None) -> Trajectory:
    """One episode: sample an action for each observation until the env is done or a budget ends.
    ``where`` (group, attempt, episode) seeds each turn's request with ``settings.seed``. ``start``: the
    env's initial observation and its first reply, when the caller has them already (:func:`run_group`
    samples a group's shared first prompt in one request)."""
    if start is None:
        observation = await _env_call(env.initial_observation, settings.env_step_timeout)
        first: TokensWithLogprobs | None = None
    else:
        observation, first = start
    transitions: list[Transition] = []
    for turn in range(settings.max_turns):
        if turn == 0 and first is not None:
            sampled = first
        else:
            completer = _completer(sampler, settings, observation)
            sampled = (await completer.complete_async(observation.model_input, seed=_seed(settings, *where, turn)))[0]
        action = sampled.tokens
        result = await _env_call(env.step, settings.env_step_timeout, action)
        transitions.append(Transition(observation.model_input, action, list(sampled.logprobs or [0.0] * len(action)),
                                      sampled.stop_reason, float(result.reward), result.done, dict(result.metrics),
                                      result.log, sampled.sequence_id))
        if result.done:
            break
        if result.next_observation is None:
            raise ValueError(f"{type(env).__name__}.step returned done=False without a next_observation")
        observation = result.next_observation
        if settings.max_episode_tokens is not None and observation.model_input.length > settings.max_episode_tokens:
            break
    return Trajectory(transitions)


def _completer(sampler: SamplingClient, settings: RolloutSettings, observation: Observation) -> TokenCompleter:
    return TokenCompleter(sampler, max_tokens=settings.max_tokens, temperature=settings.temperature,
                          stop=observation.stop)


async def _rollout(envs: Sequence[Env], sampler: SamplingClient, settings: RolloutSettings,
                   where: tuple[int, int]) -> list[Trajectory]:
    """The episodes of one group attempt. When every env opens with the same prompt (the usual group:
    one problem, several answers), the first replies come from one request for ``len(envs)`` samples,
    seeded by (group, attempt): one prefill and one round trip instead of one per episode."""
    observations = await asyncio.gather(*(_env_call(e.initial_observation, settings.env_step_timeout) for e in envs))
    firsts: list[TokensWithLogprobs | None] = [None] * len(envs)
    shared = observations[0] if len(observations) > 1 else None
    if shared is not None and all(o.model_input == shared.model_input and o.stop == shared.stop
                                  for o in observations[1:]):
        firsts = list(await _completer(sampler, settings, shared).complete_async(
            shared.model_input, len(envs), seed=_seed(settings, *where)))
        if len(firsts) != len(envs):
            raise RuntimeError(f"asked the sampler for {len(envs)} samples of the group's prompt, got {len(firsts)}")
    starts: list[Start] = list(zip(observations, firsts))
    return list(await asyncio.gather(*(run_episode(e, sampler, settings, (*where, i), start)
                                       for i, (e, start) in enumerate(zip(envs, starts)))))


async def run_group(builder: EnvGroupBuilder, sampler: SamplingClient, settings: RolloutSettings,
                    index: int = 0) -> TrajectoryGroup | None:
    """The group's episodes, concurrently; None when it failed and ``on_error`` drops it. ``index``: the
    group's place in the batch (its episodes' sampling seeds derive from it)."""
    attempts = 1 + (settings.max_retries if settings.on_error == "retry" else 0)
    for attempt in range(attempts):
        try:
            envs = await _maybe_await(builder.make_envs())
            try:
                trajectories = await asyncio.wait_for(_rollout(envs, sampler, settings, (index, attempt)),
                                                      settings.rollout_timeout)
            except TimeoutError as exc:
                if exc.args:  # an env call's own timeout
                    raise
                raise TimeoutError(f"the rollout of {builder.name()} took over {settings.rollout_timeout} s") from None
            extra = builder.group_rewards(trajectories)
            rewards = [t.total_reward + float(x) for t, x in zip(trajectories, extra)]
            return TrajectoryGroup(builder, trajectories, rewards)
        except Exception as exc:  # noqa: BLE001 - the policy decides
            if settings.on_error == "fail":
                raise
            logger.warning("rollout of %s failed (attempt %d of %d): %r", builder.name(), attempt + 1, attempts, exc)
    return None


async def run_groups(builders: Sequence[EnvGroupBuilder], sampler: SamplingClient, settings: RolloutSettings
                     ) -> tuple[list[TrajectoryGroup], int]:
    """Every group of a batch concurrently: (the groups that succeeded, how many were dropped)."""
    results = await asyncio.gather(*(run_group(b, sampler, settings, i) for i, b in enumerate(builders)))
    groups = [g for g in results if g is not None]
    return groups, len(results) - len(groups)


def rollout_batch(builders: Sequence[EnvGroupBuilder], sampler: SamplingClient, settings: RolloutSettings
                  ) -> tuple[list[TrajectoryGroup], int]:
    """:func:`run_groups` from synchronous code."""
    return asyncio.run(run_groups(builders, sampler, settings))
