"""Tasks: one problem set for SFT data, RL rewards and eval accuracy (the addition task)."""

from __future__ import annotations

import pytest

from cookbook.errors import ConfigError
from cookbook.supervised.data import DatasetSpec, load_conversations
from cookbook.tasks import AdditionTask, Problem, exact_match, task_from_spec


def test_addition_problems_are_seeded_and_answered_by_their_reference():
    task = AdditionTask(digits=3)
    problems = task.problems(50, seed=4)
    assert problems == task.problems(50, seed=4) and problems != task.problems(50, seed=5)
    for p in problems:
        a, b = map(int, p.messages[0]["content"].split("+"))
        assert 100 <= a <= 999 and 100 <= b <= 999 and p.reference == str(a + b)
        assert task.conversation(p) == [p.messages[0], {"role": "assistant", "content": p.reference}]


def test_held_out_split_keeps_test_problems_out_of_training():
    task = AdditionTask()
    train, test = task.held_out_split(2000, 100, seed=0)
    assert len(train) == 2000 and len(test) == 100
    assert not {task.key(p) for p in train} & {task.key(p) for p in test}
    assert test == task.problems(100, seed=1)


def test_grade_is_the_reward_and_the_accuracy():
    task = AdditionTask()
    problem = AdditionTask.problem(23, 45)
    assert task.grade(problem, "68") == 1.0 and task.grade(problem, " 68 \n") == 1.0
    assert task.grade(problem, "67") == 0.0 and task.grade(problem, "68 apples") == 0.0
    assert exact_match("a  b", " a b") and not exact_match("ab", "a b")


def test_digit_credit_scores_a_wrong_answer_by_its_right_digits_below_the_exact_sum():
    problem = AdditionTask.problem(54, 55)  # 109
    shaped = AdditionTask(digit_credit=0.6)
    assert shaped.grade(problem, "109") == 1.0 and shaped.grade(problem, " 109\n") == 1.0
    assert shaped.grade(problem, "108") == pytest.approx(0.6 * 2 / 3)  # aligned on the last digit
    assert shaped.grade(problem, "19") == pytest.approx(0.6 * 1 / 3)  # " 19" against "109": the 9
    assert shaped.grade(problem, "1090") == 0.0 and shaped.grade(problem, "910") == 0.0
    assert shaped.grade(problem, "10 9") == 0.0 and shaped.grade(problem, "¹⁰⁹") == 0.0  # not plain digits
    assert shaped.grade(problem, "") == 0.0
    assert max(shaped.grade(problem, f"{n}") for n in range(1000) if n != 109) < 1.0
    assert AdditionTask().grade(problem, "108") == 0.0  # off by default: exact match
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="digit_credit"):
            AdditionTask(digit_credit=bad)


def test_specs_name_tasks_and_data_source_addition_is_the_task():
    assert task_from_spec("addition") == AdditionTask(digits=2)
    assert task_from_spec("addition:4") == AdditionTask(digits=4)
    assert task_from_spec("data.jsonl") is None and task_from_spec("hf:org/name") is None
    with pytest.raises(ConfigError, match="addition:x"):
        task_from_spec("addition:x")
    assert load_conversations(DatasetSpec("addition:3"), n_synthetic=30, seed=2) == \
        AdditionTask(digits=3).conversations(30, seed=2)


def test_a_task_of_your_own_needs_only_problems():
    from cookbook.tasks import Task

    class Capitals(Task):
        def problems(self, n, *, seed=0, exclude=()):
            rows = [("France", "Paris"), ("Japan", "Tokyo")]
            return [Problem([{"role": "user", "content": f"Capital of {c}?"}], a) for c, a in rows
                    if f"Capital of {c}?" not in exclude][:n]

    task = Capitals()
    assert task.conversations(1)[0][-1] == {"role": "assistant", "content": "Paris"}
    assert task.grade(task.problems(2)[1], "Tokyo") == 1.0
