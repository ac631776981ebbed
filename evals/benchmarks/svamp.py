"""SVAMP: 1000 one-step and two-step arithmetic word problems with varied structure; numeric answers.

Data: ``ChilleD/SVAMP`` on the hub, or a JSONL of ``{"Body", "Question", "Answer", ...}`` rows
(``math/svamp.jsonl`` under ``$COOKBOOK_EVAL_DATA``). The question is the body followed by the
question sentence.
"""

from __future__ import annotations

from typing import Any

from evals.benchmarks.base import DatasetBenchmark
from evals.benchmarks.loading import field, number_text


class SVAMP(DatasetBenchmark):
    name = "svamp"
    description = "arithmetic word problems (1000); numeric answers"
    local_file = "math/svamp.jsonl"
    hub = "hf:ChilleD/SVAMP"
    max_tokens = 512

    def row(self, row: dict[str, Any], where: str) -> tuple[str, str]:
        body = str(field(row, ("Body", "body"), where)).strip()
        question = str(field(row, ("Question", "question"), where)).strip()
        return f"{body} {question}", number_text(field(row, ("Answer", "answer"), where))
