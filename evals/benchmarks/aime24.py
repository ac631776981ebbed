"""AIME 2024: the 30 problems of both 2024 AIME papers; integer answers 0-999.

Data: ``HuggingFaceH4/aime_2024`` (split ``train``) on the hub, or a JSONL of
``{"problem", "answer", ...}`` rows (``math/aime24.jsonl`` under ``$COOKBOOK_EVAL_DATA``).
"""

from __future__ import annotations

from typing import Any

from evals.benchmarks.base import DatasetBenchmark
from evals.benchmarks.loading import field, number_text


class AIME24(DatasetBenchmark):
    name = "aime24"
    description = "AIME 2024 (30); integer answers"
    local_file = "math/aime24.jsonl"
    hub = "hf:HuggingFaceH4/aime_2024"
    split = "train"  # the hub copy has one split
    max_tokens = 4096

    def row(self, row: dict[str, Any], where: str) -> tuple[str, str]:
        return str(field(row, ("problem",), where)), number_text(field(row, ("answer",), where))
