"""MBPP: short Python programming tasks, each checked by three ``assert`` statements.

Data: ``google-research-datasets/mbpp`` on the hub (config ``full``, test split, 500 tasks; the
``sanitized`` config works too with ``source=hf:google-research-datasets/mbpp:sanitized``), or
``code/mbpp.jsonl`` under ``$COOKBOOK_EVAL_DATA``, or ``source=`` any local ``.jsonl`` / ``.json``
/ ``.parquet`` of MBPP-style rows: ``text`` (or ``prompt``), ``code`` (a reference solution),
``test_list`` (assert statements), optional ``test_setup_code`` / ``test_imports`` and ``task_id``.

The prompt is the task and its tests (as in the MBPP paper, so the function's name and signature
are known); the tests run after the reply's code in the sandbox (``evals.sandbox``).
"""

from __future__ import annotations

from typing import Any

from cookbook.errors import DataError
from evals.benchmarks.base import BenchmarkProblem
from evals.benchmarks.loading import field
from evals.coding import CodeBenchmark, first_function


class MBPP(CodeBenchmark):
    name = "mbpp"
    description = "basic Python programming tasks (test, 500); assert tests in the sandbox"
    local_file = "code/mbpp.jsonl"
    hub = "hf:google-research-datasets/mbpp:full"

    def problem_from_row(self, index: int, row: dict[str, Any], where: str) -> BenchmarkProblem:
        task = str(field(row, ("text", "prompt", "question"), where)).strip()
        tests = field(row, ("test_list",), where)
        if isinstance(tests, str) or not tests or not all(isinstance(t, str) for t in tests):
            raise DataError(f"{where}: test_list must be a non-empty list of assert statements")
        code = str(field(row, ("code",), where))
        setup = "\n".join(str(row.get(k) or "") if not isinstance(row.get(k), list) else "\n".join(row[k])
                          for k in ("test_imports", "test_setup_code")).strip()
        question = f"{task}\nYour code should pass these tests:\n\n```python\n" + "\n".join(tests) + "\n```"
        return self.code_problem(index, question, reference=code, tests=f"{setup}\n" + "\n".join(tests),
                                 entry_point=first_function(code), id=str(row.get("task_id", index)))
