"""The graders against the real benchmark data in ../shared/data (skipped when it is absent)."""

import json
from pathlib import Path

import pytest

from evals.graders import (
    extract_boxed,
    extract_gsm8k_answer,
    grade_gsm8k,
    grade_math,
    math_equal,
    normalize_math_answer,
)

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"


def load(name: str) -> list[dict]:
    path = DATA_DIR / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with path.open() as f:
        return [json.loads(line) for line in f]


def plus_one(number: str) -> str:
    return str(int(number) + 1) if number.lstrip("-").isdigit() else str(float(number) + 1)


def test_gsm8k_gold_responses_grade_correct_and_gold_plus_one_wrong():
    rows = load("gsm8k/test.jsonl")
    for row in rows:
        gold = extract_gsm8k_answer(row["answer"])
        assert gold is not None, row["answer"]
        assert grade_gsm8k(row["answer"], row["answer"]), row["answer"]
        assert grade_gsm8k(f"So she makes $\\boxed{{{gold}}}$ dollars.", row["answer"]), gold
        assert grade_gsm8k(f"The answer is {gold}.", gold), gold
        wrong = plus_one(gold)
        assert not grade_gsm8k(f"\\boxed{{{wrong}}}", row["answer"]), gold
        assert not grade_gsm8k(f"The answer is {wrong}.", row["answer"]), gold


def test_math500_gold_boxed_answers_equal_the_answer_field():
    rows = load("math/math500.jsonl")
    failures = [(row["unique_id"], row["answer"], extract_boxed(row["solution"]))
                for row in rows if not grade_math(row["solution"], row["answer"])]
    print(f"math500: {len(rows) - len(failures)}/{len(rows)} equal; failures: {failures}")
    assert len(failures) <= 0.01 * len(rows), failures


def test_math500_normalization_is_idempotent():
    for row in load("math/math500.jsonl"):
        once = normalize_math_answer(row["answer"])
        assert normalize_math_answer(once) == once, row["answer"]


def test_aime24_boxed_solutions_and_integer_responses():
    rows = load("math/aime24.jsonl")
    boxed = [(row["answer"], extract_boxed(row["solution"])) for row in rows if extract_boxed(row["solution"])]
    assert len(boxed) >= len(rows) - 1  # one solution states its answer without a box
    assert all(math_equal(found, answer) for answer, found in boxed), boxed
    for row in rows:  # answers are zero-padded ("025")
        assert grade_math(f"\\boxed{{{int(row['answer'])}}}", row["answer"])
        assert not grade_math(f"\\boxed{{{int(row['answer']) + 1}}}", row["answer"])


def test_amc23_integer_responses_match_float_answers():
    for row in load("math/amc23.jsonl"):  # answers are floats such as 27.0
        answer = int(row["answer"])
        assert grade_math(f"The answer is $\\boxed{{{answer}}}$.", str(row["answer"]))
        assert not grade_math(f"\\boxed{{{answer + 1}}}", str(row["answer"]))


def test_minerva_solutions_all_have_a_boxed_answer():
    rows = load("math/minerva_math.jsonl")
    answers = [extract_boxed(row["solution"]) for row in rows]
    assert all(answers)
    assert all(grade_math(row["solution"], answer) for row, answer in zip(rows, answers))


def test_svamp_answer_phrases_match():
    for row in load("math/svamp.jsonl"):
        answer = row["Answer"]
        assert grade_math(f"The answer is {answer}", str(answer))
        assert grade_math(f"The answer is {answer:.15g}.", str(answer))
        assert not grade_math(f"The answer is {answer + 1}", str(answer))
