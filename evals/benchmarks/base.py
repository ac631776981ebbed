"""What a benchmark is: a :class:`cookbook.tasks.Task` with an ordered, fixed problem set, a prompt
format, a grader and sampling defaults.

- problems: :meth:`Benchmark.examples` (every problem, in the data's order, each with an ``id``);
  :meth:`Benchmark.problems` is the ``Task`` interface (``n`` problems drawn with ``seed``), so the
  same object gives RL rewards and SFT data;
- prompt: :meth:`Benchmark.prompt` (the question plus the benchmark's ``instruction``, as one user
  message; a renderer turns it into tokens);
- grade: :meth:`Benchmark.grade` (a response's text -> a number in [0, 1]), with
  :meth:`Benchmark.extract` showing which answer it read;
- defaults: ``max_tokens`` and ``temperature``.

:class:`DatasetBenchmark` adds loading from a file or the hub (``evals.benchmarks.loading``): a
built-in data set is one subclass that names its files and turns a row into a question and a
reference answer.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, ClassVar

from cookbook.errors import ConfigError
from cookbook.tasks import Problem, Task
from evals.benchmarks.loading import default_source, load_rows
from evals.graders import extract_final_answer, grade_math
from renderers import Message


@dataclass(frozen=True)
class BenchmarkProblem(Problem):
    id: str = ""  # stable within the benchmark's source: results are resumed by it


class Benchmark(Task):
    """A fixed problem set with a prompt format, a grader and sampling defaults.

    Subclasses set ``name`` and implement :meth:`load`; most also set ``instruction``,
    ``max_tokens`` and override :meth:`grade` / :meth:`extract`.
    """

    name: ClassVar[str] = "benchmark"
    description: ClassVar[str] = ""
    instruction: str = ""  # appended to every question (an instance may override it)
    max_tokens: ClassVar[int] = 1024
    temperature: ClassVar[float] = 0.0

    def __init__(self, *, instruction: str | None = None) -> None:
        if instruction is not None:
            self.instruction = instruction
        self._examples: list[BenchmarkProblem] | None = None

    @abstractmethod
    def load(self) -> list[BenchmarkProblem]:
        """Every problem of the benchmark, in order (called once; see :meth:`examples`)."""

    def examples(self, limit: int | None = None) -> list[BenchmarkProblem]:
        """The first ``limit`` problems (all when None), in the data's order."""
        if self._examples is None:
            self._examples = self.load()
        return self._examples if limit is None else self._examples[:limit]

    def problems(self, n: int, *, seed: int = 0, exclude: Collection[str] = ()) -> list[Problem]:
        """``n`` problems drawn with ``seed`` (the ``Task`` interface; fewer when the set is smaller)."""
        pool = [p for p in self.examples() if self.key(p) not in exclude]
        random.Random(seed).shuffle(pool)
        return list(pool[:n])

    def prompt(self, question: str) -> list[Message]:
        """The conversation that asks ``question``."""
        content = f"{question.strip()}\n\n{self.instruction}" if self.instruction else question
        return [{"role": "user", "content": content}]

    def problem(self, id: str, question: str, reference: str) -> BenchmarkProblem:
        return BenchmarkProblem(messages=self.prompt(question), reference=reference, id=id)

    def extract(self, answer: str) -> str | None:
        """The final answer the grader reads from a response (shown in the results)."""
        return answer.strip()

    def identity(self) -> dict[str, Any]:
        """What makes two runs of this benchmark comparable (results are reused only when it matches)."""
        return {"benchmark": self.name, "instruction": self.instruction}


class MathBenchmark(Benchmark):
    """Graded by ``evals.graders.grade_math``: the response's final answer (``\\boxed{}`` first) must
    equal the reference (numbers, LaTeX expressions, tuples, intervals, ... ; sympy for the rest)."""

    instruction = "Solve the problem step by step, then write the final answer in \\boxed{}."

    def grade(self, problem: Problem, answer: str) -> float:
        return float(grade_math(answer, problem.reference))

    def extract(self, answer: str) -> str | None:
        return extract_final_answer(answer)


class DatasetBenchmark(MathBenchmark):
    """A benchmark read from a file or the hub. ``source=None`` finds ``local_file`` under ``data_dir``
    (default ``$COOKBOOK_EVAL_DATA``), else loads ``hub`` (``hf:<name>[:<config>]``) at ``split``.

    ``local_file`` may hold ``{split}`` (``gsm8k/{split}.jsonl``); without it the file is the default
    split only, and another split comes from the hub (or ``source``)."""

    local_file: ClassVar[str | None] = None  # e.g. "math/math500.jsonl", relative to $COOKBOOK_EVAL_DATA
    hub: ClassVar[str] = ""
    split: str = "test"  # the default split (an instance may ask for another)

    def __init__(self, source: str | None = None, *, split: str | None = None, instruction: str | None = None,
                 data_dir: str | None = None) -> None:
        super().__init__(instruction=instruction)
        default_split = self.split
        if split is not None:
            self.split = split
        local = self.local_file
        if local is not None and "{split}" not in local and self.split != default_split:
            if data_dir and not source:
                raise ConfigError(f"{self.name}: a data_dir holds only the {default_split} split ({local}); "
                                  f"give source=<file> for the {self.split} split")
            local = None
        local = local.format(split=self.split) if local else None
        self.source = source or default_source(local, self.hub, data_dir)

    def row(self, row: dict[str, Any], where: str) -> tuple[str, str]:
        """(question, reference answer) of one row; ``where`` names it for error messages (implement
        this or :meth:`problem_from_row`)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither row() nor problem_from_row()")

    def problem_from_row(self, index: int, row: dict[str, Any], where: str) -> BenchmarkProblem:
        """The problem of one row (default: :meth:`row`'s question and reference); benchmarks whose
        problems carry more than a reference (tests, choices) override this instead of :meth:`row`."""
        return self.problem(str(index), *self.row(row, where))

    def load(self) -> list[BenchmarkProblem]:
        rows = load_rows(self.source, self.split)
        if not rows:
            raise ConfigError(f"{self.source}: no rows for benchmark {self.name}")
        return [self.problem_from_row(i, row, rows.where(i)) for i, row in enumerate(rows)]

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "source": self.source, "split": self.split}
