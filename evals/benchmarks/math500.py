"""MATH-500: 500 competition problems of the MATH test set (the PRM800K split); LaTeX answers.

Data: ``HuggingFaceH4/MATH-500`` on the hub, or a JSONL of ``{"problem", "answer", ...}`` rows
(``math/math500.jsonl`` under ``$COOKBOOK_EVAL_DATA``).
"""

from __future__ import annotations

from typing import Any

from evals.benchmarks.base import DatasetBenchmark
from evals.benchmarks.loading import field


class Math500(DatasetBenchmark):
    name = "math500"
    description = "competition math, MATH test subset (500); LaTeX answers"
    local_file = "math/math500.jsonl"
    hub = "hf:HuggingFaceH4/MATH-500"
    max_tokens = 2048

    def row(self, row: dict[str, Any], where: str) -> tuple[str, str]:
        return str(field(row, ("problem",), where)), str(field(row, ("answer",), where))
