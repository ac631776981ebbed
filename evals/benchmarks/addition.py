"""addition: the tiny model's task, ``a+b`` as a chat; the answer is the sum's digits, exact match.

``addition`` (or ``addition:<digits>``, ``addition:<digits>:<seed>``) is the quickstart's held-out
set: ``AdditionTask(digits).held_out_split(n_train, 200, seed=seed)``'s 200 test problems (digits 2
and seed 0 by default, as in the quickstart), asked without an instruction, greedy, 8 tokens at
most; so ``cookbook eval benchmark=addition`` on a checkpoint of ``cookbook quickstart`` (or
``benchmark=addition:2:1`` for ``cookbook quickstart seed=1``) reproduces the quickstart's own
accuracy.
"""

from __future__ import annotations

from typing import Any

from cookbook.errors import ConfigError
from cookbook.tasks import AdditionTask, Problem
from evals.benchmarks.base import Benchmark, BenchmarkProblem


class Addition(Benchmark):
    name = "addition"
    description = "two-digit addition, the quickstart's 200 held-out problems (tiny model)"
    max_tokens = 8

    def __init__(self, digits: int = 2, *, n: int = 200, seed: int = 0, instruction: str | None = None) -> None:
        super().__init__(instruction=instruction)
        self.task, self.n, self.seed = AdditionTask(digits=digits), n, seed

    @classmethod
    def from_arg(cls, arg: str) -> Addition:
        """``addition:<digits>`` or ``addition:<digits>:<seed>``."""
        digits, _, seed = arg.partition(":")
        if not (digits.isdigit() and int(digits) >= 1) or not (seed.isdigit() or not seed):
            raise ConfigError(f"addition:{arg}: expected addition:<digits> or addition:<digits>:<seed> with a positive "
                              "number of digits, e.g. addition:3 or addition:2:1")
        return cls(int(digits), seed=int(seed) if seed else 0)

    def load(self) -> list[BenchmarkProblem]:
        _, test = self.task.held_out_split(0, self.n, seed=self.seed)
        return [self.problem(str(i), p.messages[-1]["content"], p.reference) for i, p in enumerate(test)]

    def grade(self, problem: Problem, answer: str) -> float:
        return self.task.grade(problem, answer)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "digits": self.task.digits, "n": self.n, "seed": self.seed}
