"""Code benchmarks: write a Python function, graded by running tests on it in the sandbox.

A :class:`CodeProblem` holds the tests (Python that fails, by an exception or a non-zero exit, when
the solution is wrong) and optionally ``code_prompt``, code the solution continues (HumanEval's
signature and docstring). Grading a response:

1. :func:`extract_code`: the code of the response: the last fenced block that defines the
   problem's function (else the last fenced block), or the whole text when there is no fence (a
   base model's continuation);
2. :func:`build_program`: ``code_prompt`` + the code (an indented code continues the prompt's
   function, a top-level one is placed after it), then the tests;
3. ``evals.sandbox.run_python`` under the benchmark's :class:`evals.sandbox.Limits`: 1.0 when it
   exits 0, else 0.0 (a failed assertion, an exception, a timeout, too much output or memory).

:class:`CodeBenchmark` is a :class:`evals.benchmarks.DatasetBenchmark` with that grader, so code
problems serve the eval runner (pass@k with ``n`` samples), RL rewards (``recipes/rl/code``) and
SFT data (the reference solution) like every benchmark.

May import ``cookbook``, ``renderers`` and ``evals.benchmarks`` / ``evals.sandbox``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from cookbook.tasks import Problem
from evals.benchmarks.base import BenchmarkProblem, DatasetBenchmark
from evals.sandbox import Execution, Limits, run_python

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_DEF_RE = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


@dataclass(frozen=True)
class CodeProblem(BenchmarkProblem):
    tests: str = ""  # run after the solution; must fail when the solution is wrong
    entry_point: str = ""  # the function the tests call
    code_prompt: str = ""  # code the solution continues (e.g. a signature and docstring); may be empty


def extract_code(text: str, entry_point: str = "") -> str:
    """The program text of a response (see the module docstring); leading indentation is kept."""
    blocks = [body for language, body in _FENCE_RE.findall(text) if language.lower() in ("", "python", "py",
                                                                                          "python3")]
    if not blocks:
        return text.strip("\n").rstrip() + "\n" if text.strip() else ""
    defining = [b for b in blocks if entry_point and re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", b, re.M)]
    return (defining or blocks)[-1].rstrip() + "\n"


def build_program(problem: CodeProblem, code: str) -> str:
    """``code_prompt``, the solution and the tests, as one Python file."""
    first = next((line for line in code.splitlines() if line.strip()), "")
    if problem.code_prompt and first[:1] in (" ", "\t"):  # a continuation of the prompt's function body
        solution = problem.code_prompt + code
    else:
        solution = f"{problem.code_prompt}\n\n{code}" if problem.code_prompt else code
    return f"{solution}\n\n{problem.tests}\n"


def first_function(code: str) -> str:
    """The name of the first top-level function ``code`` defines ('' when none)."""
    match = _DEF_RE.search(code)
    return match.group(1) if match else ""


class CodeBenchmark(DatasetBenchmark):
    """A data set of code problems graded in the sandbox; subclasses turn a row into a :class:`CodeProblem`."""

    instruction = ("Write a Python solution. Reply with the complete function (and any imports it needs) in one "
                   "```python code block.")
    max_tokens: ClassVar[int] = 1024
    limits: Limits = Limits(timeout_s=10.0, cpu_s=10.0, memory_mb=1024)

    def run(self, problem: Problem, answer: str) -> Execution:
        """The sandbox run of ``answer`` against ``problem``'s tests (to see why a solution failed)."""
        if not isinstance(problem, CodeProblem):
            raise TypeError(f"{self.name} grades CodeProblems, got {type(problem).__name__}")
        return run_python(build_program(problem, extract_code(answer, problem.entry_point)), limits=self.limits)

    def grade(self, problem: Problem, answer: str) -> float:
        return float(self.run(problem, answer).ok)

    def extract(self, answer: str) -> str | None:
        return extract_code(answer) or None

    def code_problem(self, index: int, question: str, *, reference: str, tests: str, entry_point: str = "",
                     code_prompt: str = "", id: str | None = None) -> CodeProblem:
        return CodeProblem(messages=self.prompt(question), reference=reference, id=str(index) if id is None else id,
                           tests=tests, entry_point=entry_point, code_prompt=code_prompt)

    def identity(self) -> dict[str, Any]:
        limits = self.limits
        return {**super().identity(), "timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb}
