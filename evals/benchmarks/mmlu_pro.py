"""MMLU-Pro: 12,032 multiple-choice questions over 14 subjects, up to ten options each (A-J).

Data: ``TIGER-Lab/MMLU-Pro`` on the hub (test split), or ``mc/mmlu_pro.jsonl`` under
``$COOKBOOK_EVAL_DATA``, or ``source=`` any file of rows with ``question``, ``options`` (a list) and
``answer`` (the letter) or ``answer_index``; ``question_id`` names a row when present. Graded by the
letter the reply picks (``evals.choices``).
"""

from __future__ import annotations

from typing import Any

from cookbook.errors import DataError
from evals.benchmarks.loading import field
from evals.choices import LETTERS, ChoiceBenchmark


class MMLUPro(ChoiceBenchmark):
    name = "mmlu_pro"
    description = "multiple choice over 14 subjects (test, 12032), up to 10 options"
    local_file = "mc/mmlu_pro.jsonl"
    hub = "hf:TIGER-Lab/MMLU-Pro"

    def choice_row(self, row: dict[str, Any], index: int, where: str) -> tuple[str, list[str], int]:
        options = field(row, ("options",), where)
        if not isinstance(options, list):
            raise DataError(f"{where}: options must be a list")
        if row.get("answer_index") is not None:
            correct = int(row["answer_index"])
        else:
            answer = str(field(row, ("answer",), where)).strip().upper()
            if answer not in LETTERS:
                raise DataError(f"{where}: answer must be an option letter, got {answer!r}")
            correct = LETTERS.index(answer)
        return str(field(row, ("question",), where)), [str(o) for o in options], correct
