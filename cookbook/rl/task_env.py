"""Single-turn environments over a :class:`cookbook.tasks.Task`: the reward is the task's grade.

One problem per group: ``group_size`` episodes answer the same problem, and their grades are
compared for advantages. A reply that does not parse (cut off at ``max_tokens``, malformed) scores
``format_reward`` (default 0). :class:`TaskRLDataset` deals ``groups_per_batch`` problems per
step, reshuffled every epoch. With ``grade_in_thread=True`` the grade runs in a worker thread
(:class:`ThreadedTaskEnv`), so slow graders (code run in a sandbox, symbolic math) of all the
batch's episodes overlap instead of blocking the rollouts' event loop one after another.

May import ``cookbook.rl``, ``cookbook.tasks`` and ``renderers``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cookbook.rl.message_env import MessageEnv, MessageStepResult, RenderedEnv
from cookbook.rl.types import Env, EnvGroupBuilder, Observation, ShuffledDataset, StepResult
from cookbook.tasks import Problem, Task
from renderers import Message, Renderer, text_content


class TaskEnv(MessageEnv):
    def __init__(self, task: Task, problem: Problem, format_reward: float = 0.0) -> None:
        self.task, self.problem, self.format_reward = task, problem, format_reward

    def initial_messages(self) -> list[Message]:
        return list(self.problem.messages)

    def step(self, message: Message, parse_ok: bool) -> MessageStepResult:
        answer = text_content(message)
        grade = self.task.grade(self.problem, answer) if parse_ok else self.format_reward
        return MessageStepResult(grade, True, metrics={"correct": float(grade >= 1.0), "parse_ok": float(parse_ok)},
                                 log=f"answer {answer!r}, reference {self.problem.reference!r}")


class ThreadedTaskEnv(Env):
    """:class:`TaskEnv` as a token env whose ``task.grade`` runs in a worker thread (``async`` step)."""

    def __init__(self, task: Task, problem: Problem, renderer: Renderer, format_reward: float = 0.0) -> None:
        self.env, self.renderer = TaskEnv(task, problem, format_reward), renderer

    def initial_observation(self) -> Observation:
        prompt = self.renderer.build_generation_prompt(self.env.initial_messages())
        return Observation(prompt, self.renderer.get_stop_sequences())

    async def step(self, action: list[int]) -> StepResult:
        message, ok = self.renderer.parse_response(action)
        result = await asyncio.to_thread(self.env.step, message, ok)
        return StepResult(result.reward, True, None, result.metrics, result.log)


class TaskGroupBuilder(EnvGroupBuilder):
    def __init__(self, task: Task, problem: Problem, renderer: Renderer, group_size: int,
                 format_reward: float = 0.0, grade_in_thread: bool = False) -> None:
        self.task, self.problem, self.renderer = task, problem, renderer
        self.group_size, self.format_reward, self.grade_in_thread = group_size, format_reward, grade_in_thread

    def make_envs(self) -> list[Env]:
        if self.grade_in_thread:
            return [ThreadedTaskEnv(self.task, self.problem, self.renderer, self.format_reward)
                    for _ in range(self.group_size)]
        return [RenderedEnv(TaskEnv(self.task, self.problem, self.format_reward), self.renderer)
                for _ in range(self.group_size)]

    def name(self) -> str:
        return self.task.name


class TaskRLDataset(ShuffledDataset[Problem]):
    """``groups_per_batch`` problems per step, ``num_epochs`` passes, shuffled with ``seed`` per epoch."""

    def __init__(self, task: Task, problems: Sequence[Problem], renderer: Renderer, *, groups_per_batch: int,
                 group_size: int, num_epochs: int = 1, seed: int = 0, format_reward: float = 0.0,
                 grade_in_thread: bool = False) -> None:
        super().__init__(problems, groups_per_batch=groups_per_batch, num_epochs=num_epochs, seed=seed)
        self.task, self.problems, self.renderer = task, self.items, renderer
        self.group_size, self.format_reward, self.grade_in_thread = group_size, format_reward, grade_in_thread

    def make_group(self, problem: Problem) -> TaskGroupBuilder:
        return TaskGroupBuilder(self.task, problem, self.renderer, self.group_size, self.format_reward,
                                self.grade_in_thread)
