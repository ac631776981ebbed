"""Tasks: one definition of a problem set that serves SFT data, RL rewards and eval accuracy.

A :class:`Task` makes :class:`Problem`s (the conversation up to the answer, and the reference
answer) and grades an answer to one of them with a number in [0, 1]:

- SFT data: ``task.conversations(n, seed=...)`` (each problem with its reference as the
  assistant's reply);
- RL reward: ``task.grade(problem, answer_text)``;
- eval accuracy: the mean grade of sampled answers (``cookbook.hooks.accuracy_hook``).

``task_from_spec("addition:3")`` finds a built-in task by name (that is how ``data.source=addition``
reaches it). Built in: :class:`AdditionTask`, integer addition as a chat (``"23+45"`` -> ``"68"``).

May import ``cookbook.errors`` and ``renderers`` (message types).
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass

from cookbook.errors import ConfigError
from renderers import Message

Conversation = list[Message]


@dataclass(frozen=True)
class Problem:
    messages: list[Message]  # the conversation up to the answer
    reference: str  # the reference answer


def normalize(text: str) -> str:
    """Trimmed, with runs of whitespace collapsed to one space."""
    return " ".join(text.split())


def exact_match(answer: str, reference: str) -> bool:
    """Equal after :func:`normalize`."""
    return normalize(answer) == normalize(reference)


class Task(ABC):
    """A problem set with a grader. Subclasses implement :meth:`problems`, and :meth:`grade` when
    exact match of the answer text is not the right grade."""

    name: str = "task"

    @abstractmethod
    def problems(self, n: int, *, seed: int = 0, exclude: Collection[str] = ()) -> list[Problem]:
        """``n`` problems chosen with ``seed``, none whose :meth:`key` is in ``exclude``."""

    def grade(self, problem: Problem, answer: str) -> float:
        """1.0 for a correct answer text, 0.0 otherwise (partial credit is allowed)."""
        return float(exact_match(answer, problem.reference))

    def key(self, problem: Problem) -> str:
        """What makes two problems the same problem (used to hold problems out of training)."""
        return str(problem.messages[-1]["content"])

    def conversation(self, problem: Problem) -> Conversation:
        """The problem answered with its reference: one SFT example."""
        return [*problem.messages, {"role": "assistant", "content": problem.reference}]

    def conversations(self, n: int, *, seed: int = 0, exclude: Collection[str] = ()) -> list[Conversation]:
        return [self.conversation(p) for p in self.problems(n, seed=seed, exclude=exclude)]

    def held_out_split(self, n_train: int, n_test: int, *, seed: int = 0) -> tuple[list[Problem], list[Problem]]:
        """``n_test`` problems (seed + 1), and ``n_train`` problems (seed) that exclude every test problem."""
        test = self.problems(n_test, seed=seed + 1)
        train = self.problems(n_train, seed=seed, exclude={self.key(p) for p in test})
        return train, test


@dataclass(frozen=True)
class AdditionTask(Task):
    """``a+b`` with ``digits``-digit operands; the answer is the sum's digits.

    ``digit_credit`` (0 by default: exact match only) shapes the grade for RL: a wrong answer made of
    digits scores ``digit_credit`` times the fraction of digit positions it gets right, the answer and
    the sum aligned on their last digit, over the longer of the two (``"108"`` for 109 gets 2/3 of
    it, ``"19"`` gets 1/3, ``"1090"`` none). Only the exact sum scores 1. Keep evals on the exact
    grade (a task with ``digit_credit=0``)."""

    digits: int = 2
    name: str = "addition"
    digit_credit: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.digit_credit < 1.0:
            raise ConfigError(f"digit_credit must be in [0, 1) (only the exact sum scores 1), got {self.digit_credit}")

    def grade(self, problem: Problem, answer: str) -> float:
        answer, reference = normalize(answer), problem.reference
        if answer == reference:
            return 1.0
        if not self.digit_credit or not (answer.isascii() and answer.isdigit()):
            return 0.0
        width = max(len(answer), len(reference))
        right = sum(x == y for x, y in zip(answer.rjust(width), reference.rjust(width)))
        return self.digit_credit * right / width

    def problems(self, n: int, *, seed: int = 0, exclude: Collection[str] = ()) -> list[Problem]:
        rng = random.Random(seed)
        low, high = 10 ** (self.digits - 1) if self.digits > 1 else 0, 10**self.digits - 1
        out: list[Problem] = []
        while len(out) < n:
            problem = self.problem(rng.randint(low, high), rng.randint(low, high))
            if self.key(problem) not in exclude:
                out.append(problem)
        return out

    @staticmethod
    def problem(a: int, b: int) -> Problem:
        return Problem(messages=[{"role": "user", "content": f"{a}+{b}"}], reference=str(a + b))


def _addition(arg: str | None) -> AdditionTask:
    if arg is not None and not (arg.isdigit() and int(arg) >= 1):
        raise ConfigError(f"addition:{arg}: the number of digits must be a positive integer, e.g. addition:3")
    return AdditionTask(digits=int(arg) if arg else 2)


# name -> the task, given the text after ``name:`` in a spec (None when there is none)
TASKS: dict[str, Callable[[str | None], Task]] = {"addition": _addition}


def task_from_spec(spec: str) -> Task | None:
    """``"addition"`` / ``"addition:<digits>"`` -> the task; None when ``spec`` names no built-in task."""
    name, sep, arg = spec.partition(":")
    if name not in TASKS:
        return None
    return TASKS[name](arg if sep else None)
