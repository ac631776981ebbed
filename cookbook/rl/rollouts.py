"""Rollouts: run episodes through a sampling client, all groups of a batch concurrently.

Every sampling request of every episode is in flight at once (one asyncio task per episode), so
a backend that batches concurrent requests (the local one does) decodes them together. Budgets:
``max_tokens`` per turn, ``max_turns`` and ``max_episode_tokens`` per episode (an episode that
runs out ends there, its last reward standing). An exception in an env or a sampling request
follows ``on_error``: ``fail`` (raise), ``retry`` (run the whole group again, up to
``max_retries`` times, then drop it) or ``drop`` (leave the group out of the batch).

Every reply is sampled through :class:`cookbook.completers.TokenCompleter`. May import
``cookbook.rl.types``, ``cookbook.completers``, ``cookbook.primitives`` and ``tinker``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cookbook.completers import TokenCompleter
from cookbook.primitives import SamplingClient
from cookbook.rl.types import Env, EnvGroupBuilder, Trajectory, TrajectoryGroup, Transition

logger = logging.getLogger(__name__)

OnError = Literal["fail", "retry", "drop"]


@dataclass(frozen=True)
class RolloutSettings:
    max_tokens: int = 64  # per turn
    temperature: float = 1.0
    max_turns: int = 16
    max_episode_tokens: int | None = None  # observation + action tokens of the last turn's prompt
    on_error: OnError = "drop"
    max_retries: int = 1


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def run_episode(env: Env, sampler: SamplingClient, settings: RolloutSettings) -> Trajectory:
    """One episode: sample an action for each observation until the env is done or a budget ends."""
    observation = await _maybe_await(env.initial_observation())
    transitions: list[Transition] = []
    for _ in range(settings.max_turns):
        completer = TokenCompleter(sampler, max_tokens=settings.max_tokens, temperature=settings.temperature,
                                   stop=observation.stop)
        sampled = (await completer.complete_async(observation.model_input))[0]
        action = sampled.tokens
        result = await _maybe_await(env.step(action))
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


async def run_group(builder: EnvGroupBuilder, sampler: SamplingClient, settings: RolloutSettings
                    ) -> TrajectoryGroup | None:
    """The group's episodes, concurrently; None when it failed and ``on_error`` drops it."""
    attempts = 1 + (settings.max_retries if settings.on_error == "retry" else 0)
    for attempt in range(attempts):
        try:
            envs = await _maybe_await(builder.make_envs())
            trajectories = list(await asyncio.gather(*(run_episode(e, sampler, settings) for e in envs)))
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
    results = await asyncio.gather(*(run_group(b, sampler, settings) for b in builders))
    groups = [g for g in results if g is not None]
    return groups, len(results) - len(groups)


def rollout_batch(builders: Sequence[EnvGroupBuilder], sampler: SamplingClient, settings: RolloutSettings
                  ) -> tuple[list[TrajectoryGroup], int]:
    """:func:`run_groups` from synchronous code."""
    return asyncio.run(run_groups(builders, sampler, settings))
