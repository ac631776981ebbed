"""Minerva math: 272 undergraduate STEM problems (MIT OpenCourseWare) from the Minerva paper.

Data: ``math-ai/minervamath`` on the hub, or a JSONL of ``{"problem", "solution", ...}`` rows whose
answer is the solution's last ``\\boxed{}`` (``math/minerva_math.jsonl`` under ``$COOKBOOK_EVAL_DATA``);
rows with an ``answer`` field use it.
"""

from __future__ import annotations

from typing import Any

from cookbook.errors import DataError
from evals.benchmarks.base import DatasetBenchmark
from evals.benchmarks.loading import field
from evals.graders import extract_boxed


class MinervaMath(DatasetBenchmark):
    name = "minerva_math"
    description = "undergraduate STEM problems, OCW (272); LaTeX answers"
    local_file = "math/minerva_math.jsonl"
    hub = "hf:math-ai/minervamath"
    max_tokens = 2048

    def row(self, row: dict[str, Any], where: str) -> tuple[str, str]:
        question = str(field(row, ("problem", "question"), where))
        if row.get("answer") is not None:
            return question, str(row["answer"])
        reference = extract_boxed(str(field(row, ("solution",), where)))
        if reference is None:
            raise DataError(f"{where}: the solution has no \\boxed{{}} answer")
        return question, reference
