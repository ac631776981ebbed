"""GSM8K: grade-school math word problems (test split, 1319; train 7473); the answer is a number.

Data: ``openai/gsm8k`` (config ``main``) on the hub, or a JSONL of ``{"question", "answer"}`` rows
whose ``answer`` ends with ``#### <number>`` (``gsm8k/test.jsonl`` / ``gsm8k/train.jsonl`` under
``$COOKBOOK_EVAL_DATA``).
"""

from __future__ import annotations

from typing import Any

from cookbook.errors import DataError
from evals.benchmarks.base import DatasetBenchmark
from evals.benchmarks.loading import field
from evals.graders import extract_gsm8k_answer


class GSM8K(DatasetBenchmark):
    name = "gsm8k"
    description = "grade-school math word problems (test, 1319); numeric answer"
    local_file = "gsm8k/{split}.jsonl"
    hub = "hf:openai/gsm8k:main"
    max_tokens = 1024

    def row(self, row: dict[str, Any], where: str) -> tuple[str, str]:
        solution = str(field(row, ("answer",), where))
        reference = extract_gsm8k_answer(solution)
        if reference is None:
            raise DataError(f"{where}: the answer field has no '#### <number>' line")
        return str(field(row, ("question",), where)), reference
