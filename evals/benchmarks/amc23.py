"""AMC 2023: 40 problems of the 2023 AMC 12 with numeric answers.

Data: ``math-ai/amc23`` on the hub, or a JSONL of ``{"problem" or "question", "answer"}`` rows
(``math/amc23.jsonl`` under ``$COOKBOOK_EVAL_DATA``; answers may be floats such as ``27.0``).
"""

from __future__ import annotations

from typing import Any

from evals.benchmarks.base import DatasetBenchmark
from evals.benchmarks.loading import field, number_text


class AMC23(DatasetBenchmark):
    name = "amc23"
    description = "AMC 2023 (40); numeric answers"
    local_file = "math/amc23.jsonl"
    hub = "hf:math-ai/amc23"
    max_tokens = 4096

    def row(self, row: dict[str, Any], where: str) -> tuple[str, str]:
        return str(field(row, ("problem", "question"), where)), number_text(field(row, ("answer",), where))
