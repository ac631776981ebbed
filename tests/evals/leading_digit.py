"""A test benchmark shared by the Inspect and lm-eval tests: the quickstart's held-out additions, scored 1
when the reply's first character is the sum's first digit (a partial score, so that an early
checkpoint of the quickstart scores above zero and a comparison of scores means something)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import evals.benchmarks
from cookbook.tasks import Problem
from evals.benchmarks import register_benchmark
from evals.benchmarks.addition import Addition


def leading_digit(answer: str, reference: str) -> bool:
    return answer.strip()[:1] == reference[:1]


class AdditionLeadingDigit(Addition):
    name = "addition_leading_digit"

    def grade(self, problem: Problem, answer: str) -> float:
        return float(leading_digit(answer, problem.reference))


@contextlib.contextmanager
def registered() -> Iterator[None]:
    """``addition_leading_digit`` is a benchmark meanwhile (``cookbook eval benchmark=...`` finds it)."""
    register_benchmark(AdditionLeadingDigit)
    try:
        yield
    finally:
        evals.benchmarks._REGISTRY.pop(AdditionLeadingDigit.name, None)
