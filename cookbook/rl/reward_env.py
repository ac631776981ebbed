"""Single-turn environments rewarded by a scorer of (prompt, reply): a reward model, a judge, any function.

A :class:`ReplyScorer` is any callable ``scorer(prompt_messages, reply_message)`` that returns an
awaitable of a float (a ``RewardModel`` of ``cookbook.preference.reward_model``, an LLM judge, a
remote grader). :class:`RewardEnv` samples one reply to a fixed prompt, parses it with the renderer
and awaits the scorer inside its ``async`` step, so the scoring of every episode of a batch is in
flight at once and never blocks the rollouts' event loop (a scorer that returns a plain float is
accepted too, but then it had better be fast). A reply that does not parse (cut off
at ``max_tokens``, malformed) is not scored and gets ``format_reward``: with a log-probability
scorer (rewards <= 0) put it below the rewards of real replies.

With a :class:`cookbook.tasks.Task` the env also grades the reply against the problem's reference
and reports it as the metric ``correct`` (the RL loop logs ``env/correct``) without using it as
reward: how often the policy is truly right next to what the scorer pays (``env/score``).
:func:`reward_hook` does the same for greedy replies to held-out problems.

May import ``cookbook.rl``, ``cookbook.completers``, ``cookbook.hooks``, ``cookbook.primitives``,
``cookbook.tasks`` and ``renderers``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Sequence
from typing import Protocol

from cookbook.completers import MessageCompleter
from cookbook.hooks import Hook
from cookbook.primitives import SamplingClient
from cookbook.rl.types import Env, EnvGroupBuilder, Observation, ShuffledDataset, StepResult
from cookbook.tasks import Problem, Task
from renderers import Message, Renderer, text_content


class ReplyScorer(Protocol):
    """``scorer(prompt, reply)``: the reward of ``reply`` (an assistant message) to the conversation ``prompt``."""

    def __call__(self, prompt: Sequence[Message], reply: Message) -> Awaitable[float] | float: ...


async def score_reply(scorer: ReplyScorer, prompt: Sequence[Message], reply: Message) -> float:
    """The scorer's value, awaited when it is awaitable."""
    value = scorer(prompt, reply)
    return float(await value if inspect.isawaitable(value) else value)


class RewardEnv(Env):
    """One reply to ``problem.messages``, rewarded by ``scorer`` (``format_reward`` when it does not parse)."""

    def __init__(self, problem: Problem, renderer: Renderer, scorer: ReplyScorer, *, format_reward: float,
                 task: Task | None = None) -> None:
        self.problem, self.renderer, self.scorer = problem, renderer, scorer
        self.format_reward, self.task = format_reward, task

    def initial_observation(self) -> Observation:
        prompt = self.renderer.build_generation_prompt(list(self.problem.messages))
        return Observation(prompt, self.renderer.get_stop_sequences())

    async def step(self, action: list[int]) -> StepResult:
        message, ok = self.renderer.parse_response(action)
        metrics = {"parse_ok": float(ok)}
        if ok:
            reward = await score_reply(self.scorer, self.problem.messages, message)
            metrics["score"] = reward
        else:
            reward = self.format_reward
        answer = text_content(message)
        log = f"answer {answer!r}, reward {reward:.4g}"
        if self.task is not None:
            metrics["correct"] = float(ok and self.task.grade(self.problem, answer) >= 1.0)
            log += f", reference {self.problem.reference!r}"
        return StepResult(reward, True, metrics=metrics, log=log)


class RewardGroupBuilder(EnvGroupBuilder):
    def __init__(self, problem: Problem, renderer: Renderer, scorer: ReplyScorer, group_size: int, *,
                 format_reward: float, task: Task | None = None) -> None:
        self.problem, self.renderer, self.scorer, self.group_size = problem, renderer, scorer, group_size
        self.format_reward, self.task = format_reward, task

    def make_envs(self) -> list[RewardEnv]:
        return [RewardEnv(self.problem, self.renderer, self.scorer, format_reward=self.format_reward, task=self.task)
                for _ in range(self.group_size)]

    def name(self) -> str:
        return self.task.name if self.task is not None else "reward"


class RewardRLDataset(ShuffledDataset[Problem]):
    """``groups_per_batch`` prompts per step (``problems``; their references are only used with ``task``),
    ``num_epochs`` passes, shuffled with ``seed`` per epoch."""

    def __init__(self, problems: Sequence[Problem], renderer: Renderer, scorer: ReplyScorer, *, groups_per_batch: int,
                 group_size: int, format_reward: float, task: Task | None = None, num_epochs: int = 1,
                 seed: int = 0) -> None:
        super().__init__(problems, groups_per_batch=groups_per_batch, num_epochs=num_epochs, seed=seed)
        self.renderer, self.scorer, self.group_size = renderer, scorer, group_size
        self.format_reward, self.task = format_reward, task

    def make_group(self, problem: Problem) -> RewardGroupBuilder:
        return RewardGroupBuilder(problem, self.renderer, self.scorer, self.group_size,
                                  format_reward=self.format_reward, task=self.task)


def reward_hook(scorer: ReplyScorer, problems: Sequence[Problem], renderer: Renderer, *, max_tokens: int = 64,
                format_reward: float, task: Task | None = None, every: int | None = None) -> Hook:
    """Greedy replies to ``problems``: ``reward`` (mean, ``format_reward`` for a reply that does not
    parse), ``parse_ok``, and with ``task`` ``accuracy`` (mean grade of the replies that parse)."""
    def run(sampling_client: SamplingClient) -> dict[str, float]:
        replies = MessageCompleter(sampling_client, renderer, max_tokens=max_tokens).complete_many(
            [p.messages for p in problems])
        parsed = [(p, r) for p, r in zip(problems, replies) if r.parsed]

        async def score_parsed() -> list[float]:
            return list(await asyncio.gather(*(score_reply(scorer, p.messages, r.message) for p, r in parsed)))
        rewards = asyncio.run(score_parsed()) + [format_reward] * (len(problems) - len(parsed))
        out = {"reward": sum(rewards) / len(problems), "parse_ok": len(parsed) / len(problems)}
        if task is not None:
            out["accuracy"] = sum(task.grade(p, r.text) for p, r in parsed) / len(problems)
        return out
    return Hook(run, every=every)
