"""A test benchmark shared by the Inspect and lm-eval tests: the quickstart's held-out additions, scored 1
when the reply's first character is the sum's first digit (a partial score, so that an early
checkpoint of the quickstart scores above zero and a comparison of scores means something)."""

from __future__ import annotations

from cookbook.tasks import Problem
from evals.benchmarks import register_benchmark
from evals.benchmarks.addition import Addition


def leading_digit(answer: str, reference: str) -> bool:
    return answer.strip()[:1] == reference[:1]


@register_benchmark
class AdditionLeadingDigit(Addition):
    name = "addition_leading_digit"

    def grade(self, problem: Problem, answer: str) -> float:
        return float(leading_digit(answer, problem.reference))
