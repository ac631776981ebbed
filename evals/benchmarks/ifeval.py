"""IFEval: 541 prompts with verifiable instructions ("answer in fewer than 50 words", "use no commas").

Data: ``google/IFEval`` on the hub (its only split is ``train``), or ``instructions/ifeval.jsonl``
under ``$COOKBOOK_EVAL_DATA``, or ``source=`` any file of rows with ``prompt``,
``instruction_id_list`` and ``kwargs`` (one dict per instruction; ``None`` values are ignored, as the
hub copy fills every key); ``key`` names a row when present. The prompt is sent as is (no
instruction appended). A reply scores 1 when it follows every instruction of its prompt (IFEval's
strict prompt-level accuracy); the checks are ``evals.instructions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from cookbook.errors import DataError
from cookbook.tasks import Problem
from evals.benchmarks.base import BenchmarkProblem, DatasetBenchmark
from evals.benchmarks.loading import field
from evals.instructions import CHECKS, follows


@dataclass(frozen=True)
class InstructionProblem(BenchmarkProblem):
    instructions: tuple[tuple[str, dict[str, Any]], ...] = ()  # (instruction id, its arguments)


class IFEval(DatasetBenchmark):
    name = "ifeval"
    description = "instruction following with verifiable constraints (541); strict prompt-level accuracy"
    local_file = "instructions/ifeval.jsonl"
    hub = "hf:google/IFEval"
    split = "train"
    instruction = ""
    max_tokens: ClassVar[int] = 2048

    def problem_from_row(self, index: int, row: dict[str, Any], where: str) -> BenchmarkProblem:
        ids = field(row, ("instruction_id_list",), where)
        kwargs = row.get("kwargs") or [{} for _ in ids]
        if not isinstance(ids, list) or not isinstance(kwargs, list) or len(kwargs) != len(ids):
            raise DataError(f"{where}: instruction_id_list and kwargs must be lists of the same length")
        unknown = [i for i in ids if i not in CHECKS]
        if unknown:
            raise DataError(f"{where}: unknown instructions {', '.join(unknown)}")
        instructions = tuple((str(i), {k: v for k, v in (a or {}).items() if v is not None})
                             for i, a in zip(ids, kwargs))
        return InstructionProblem(messages=self.prompt(str(field(row, ("prompt",), where))), reference="",
                                  id=str(row.get("key", index)), instructions=instructions)

    def followed(self, problem: Problem, answer: str) -> list[bool]:
        """Per instruction of ``problem``: whether ``answer`` follows it (instruction-level accuracy)."""
        if not isinstance(problem, InstructionProblem):
            raise TypeError(f"{self.name} grades InstructionProblems, got {type(problem).__name__}")
        return [follows(answer, instruction, kwargs) for instruction, kwargs in problem.instructions]

    def grade(self, problem: Problem, answer: str) -> float:
        return float(all(self.followed(problem, answer)))

    def extract(self, answer: str) -> str | None:
        return answer
