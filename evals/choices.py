"""Multiple-choice benchmarks: a question with lettered options, graded by the letter the reply picks.

The prompt lists the options as ``A) ...``, ``B) ...`` and asks for the reasoning followed by
"The answer is (X)". :func:`extract_choice` reads the reply's pick, in this order: the last
"answer is (X)" / "answer: X" phrase, the last ``\\boxed{X}``, a reply that is only a letter, the
last option letter standing alone in parentheses; a letter outside the options counts as no pick.

:class:`ChoiceBenchmark` is a :class:`evals.benchmarks.DatasetBenchmark`: subclasses turn a row
into a question, its options and the correct option's index (:meth:`ChoiceBenchmark.choice_row`).

May import ``cookbook``, ``renderers``, ``evals.benchmarks`` and ``evals.graders``.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cookbook.errors import DataError
from cookbook.tasks import Problem
from evals.benchmarks.base import BenchmarkProblem, DatasetBenchmark
from evals.graders import extract_boxed

LETTERS = string.ascii_uppercase
_PHRASE_RE = re.compile(r"answer\s*(?:is|:)?\s*[:\s]*\**\s*\(?([A-Z])\)?(?![A-Za-z])", re.IGNORECASE)
_PAREN_RE = re.compile(r"\(([A-Z])\)")


@dataclass(frozen=True)
class ChoiceProblem(BenchmarkProblem):
    options: tuple[str, ...] = ()  # in the order shown; the reference is the right one's letter


def format_options(options: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}) {str(option).strip()}" for i, option in enumerate(options))


def extract_choice(text: str, n_options: int) -> str | None:
    """The option letter a reply picks (see the module docstring), or None."""
    valid = LETTERS[:n_options]
    picks = [m.group(1).upper() for m in _PHRASE_RE.finditer(text)]
    boxed = extract_boxed(text)
    if boxed is not None:
        inner = re.sub(r"\\text\{([^}]*)\}", r"\1", boxed).strip(" ()")
        picks.append(inner.upper() if len(inner) == 1 else "")
    bare = text.strip().strip(".*").strip("() ")
    if len(bare) == 1:
        picks.append(bare.upper())
    if not picks:
        picks = _PAREN_RE.findall(text)
    picks = [p for p in picks if p]
    return picks[-1] if picks and picks[-1] in valid else None


def shuffled(options: Sequence[str], correct: int, seed: str) -> tuple[list[str], int]:
    """``options`` in an order fixed by ``seed`` (data sets that list the right answer first), and the
    right answer's new index."""
    order = list(range(len(options)))
    random.Random(seed).shuffle(order)
    return [options[i] for i in order], order.index(correct)


class ChoiceBenchmark(DatasetBenchmark):
    """Multiple choice graded by the picked letter; subclasses implement :meth:`choice_row`."""

    instruction = ('Think step by step, then finish with "The answer is (X)" where X is the letter of the '
                   "correct option.")
    max_tokens: ClassVar[int] = 2048

    def choice_row(self, row: dict[str, Any], index: int, where: str) -> tuple[str, list[str], int]:
        """(question, options, index of the correct option) of one row."""
        raise NotImplementedError

    def problem_from_row(self, index: int, row: dict[str, Any], where: str) -> BenchmarkProblem:
        question, options, correct = self.choice_row(row, index, where)
        if not 2 <= len(options) <= len(LETTERS) or not 0 <= correct < len(options):
            raise DataError(f"{where}: needs 2-{len(LETTERS)} options and a correct one among them "
                            f"(got {len(options)} options, answer index {correct})")
        text = f"{question.strip()}\n\n{format_options(options)}"
        return ChoiceProblem(messages=self.prompt(text), reference=LETTERS[correct],
                             id=str(row.get("question_id", row.get("Record ID", index))), options=tuple(options))

    def grade(self, problem: Problem, answer: str) -> float:
        n_options = len(problem.options) if isinstance(problem, ChoiceProblem) else len(LETTERS)
        return float(extract_choice(answer, n_options) == problem.reference)

    def extract(self, answer: str) -> str | None:
        return extract_choice(answer, len(LETTERS))
