"""GPQA Diamond: 198 graduate-level, "Google-proof" science questions with four options.

Data: ``Idavidrein/gpqa`` (config ``gpqa_diamond``; a gated data set: accept its terms on the hub
and log in with ``huggingface-cli login``; its only split is ``train``), or ``mc/gpqa_diamond.jsonl``
under ``$COOKBOOK_EVAL_DATA``, or ``source=`` any file of rows with ``Question``, ``Correct Answer``
and ``Incorrect Answer 1``-``3``. The data lists the right answer first, so the options are shuffled
in an order fixed by the row (its ``Record ID``, else its index): the same letters on every run.
"""

from __future__ import annotations

from typing import Any

from evals.benchmarks.loading import field
from evals.choices import ChoiceBenchmark, shuffled


class GPQADiamond(ChoiceBenchmark):
    name = "gpqa_diamond"
    description = "graduate-level science, multiple choice (198), 4 options"
    local_file = "mc/gpqa_diamond.jsonl"
    hub = "hf:Idavidrein/gpqa:gpqa_diamond"
    split = "train"

    def choice_row(self, row: dict[str, Any], index: int, where: str) -> tuple[str, list[str], int]:
        right = str(field(row, ("Correct Answer",), where)).strip()
        wrong = [str(field(row, (f"Incorrect Answer {i}",), where)).strip() for i in (1, 2, 3)]
        options, correct = shuffled([right, *wrong], 0, seed=f"gpqa:{row.get('Record ID', index)}")
        return str(field(row, ("Question",), where)), options, correct
