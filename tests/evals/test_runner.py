"""The eval runner with scripted responders: scores, pass@k, truncation, the JSONL rows, resume by
example id, the concurrency limit, and a configuration mismatch refused."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from evals.benchmarks import Benchmark
from evals.responders import Reply
from evals.runner import EvalDirError, EvalSettings, evaluate, summarize


class Sums(Benchmark):
    """``a+b`` for a in 0..count-1: the answer is the sum."""

    name = "sums"
    max_tokens = 4

    def __init__(self, count: int = 6) -> None:
        super().__init__()
        self.count = count

    def load(self):
        return [self.problem(f"p{a}", f"{a}+1", str(a + 1)) for a in range(self.count)]


class Scripted:
    """Replies from ``script(question, sample) -> (text, finished)``; records calls and concurrency."""

    def __init__(self, script, delay: float = 0.0):
        self.script, self.delay = script, delay
        self.calls: list[tuple[str, dict]] = []
        self.in_flight = self.most_in_flight = 0

    async def respond(self, messages, *, n, max_tokens, temperature, seed=None):
        question = messages[-1]["content"]
        self.calls.append((question, dict(n=n, max_tokens=max_tokens, temperature=temperature, seed=seed)))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        return [Reply(*self.script(question, i), completion_tokens=3, prompt_tokens=5) for i in range(n)]


def right(question: str, sample: int) -> tuple[str, bool]:
    a = int(question.split("+")[0])
    return str(a + 1), True


def test_scores_rows_and_summary(tmp_path):
    def script(question, sample):
        a = int(question.split("+")[0])
        if a == 0:
            return "1", False  # right text but cut off: scores 0
        return (str(a + 1) if a % 2 else "0"), True  # odd a right, even a wrong
    responder = Scripted(script)
    result = evaluate(Sums(), responder, output_dir=tmp_path / "out", progress=False, target={"model": "m"})
    s = result.summary
    assert s["examples"] == 6 and s["samples"] == 6 and s["accuracy"] == pytest.approx(3 / 6)
    assert s["stderr"] == pytest.approx(math.sqrt(0.25 * 6 / 5 / 6))  # sample std of 0/1 scores over problems
    assert s["truncation_rate"] == pytest.approx(1 / 6) and s["completion_tokens_mean"] == 3
    assert s["prompt_tokens"] == 30 and s["pass@1"] == pytest.approx(0.5) and s["model"] == "m"
    assert responder.calls[0][1] == dict(n=1, max_tokens=4, temperature=0.0, seed=None)  # the benchmark's defaults
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == {f"p{a}" for a in range(6)}
    first = next(r for r in rows if r["id"] == "p1")
    assert first["prompt"] == [{"role": "user", "content": "1+1"}] and first["response"] == "2"
    assert first["extracted"] == "2" and first["correct"] is True and first["reference"] == "2"
    assert next(r for r in rows if r["id"] == "p0")["finished"] is False
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["accuracy"] == pytest.approx(0.5)


def test_pass_at_k_with_n_samples():
    # problem a: sample i is right when i < a (so problem 0 never, problem 4+ always with n=4)
    def script(question, sample):
        a = int(question.split("+")[0])
        return (str(a + 1) if sample < a else "x"), True
    result = evaluate(Sums(5), Scripted(script), EvalSettings(n=4, temperature=1.0), progress=False)
    s = result.summary
    assert s["samples"] == 20 and s["accuracy"] == pytest.approx((0 + 1 / 4 + 2 / 4 + 3 / 4 + 1) / 5)
    # pass@2 per problem with c = 0, 1, 2, 3, 4 of n = 4: 0, 1/2, 5/6, 1, 1
    assert s["pass@2"] == pytest.approx((0 + 0.5 + 5 / 6 + 1 + 1) / 5)
    assert s["pass@4"] == pytest.approx(4 / 5) and set(k for k in s if k.startswith("pass@")) == {
        "pass@1", "pass@2", "pass@4"}


def test_resume_by_id_reuses_finished_examples_and_extends_with_a_larger_limit(tmp_path):
    out = tmp_path / "out"
    evaluate(Sums(), Scripted(right), EvalSettings(limit=3), output_dir=out, progress=False)
    # an interrupted run leaves a cut-off last line: it is dropped and its example redone
    with open(out / "results.jsonl", "a") as f:
        f.write('{"id": "p3", "sam')
    second = Scripted(right)
    result = evaluate(Sums(), second, EvalSettings(limit=5), output_dir=out, progress=False)
    assert sorted(q for q, _ in second.calls) == ["3+1", "4+1"]
    assert result.summary["examples"] == 5 and result.summary["reused_examples"] == 3
    assert result.summary["accuracy"] == 1.0
    third = Scripted(right)
    again = evaluate(Sums(), third, EvalSettings(limit=5), output_dir=out, progress=False)
    assert third.calls == [] and again.summary["accuracy"] == 1.0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(line) for line in lines)


def test_a_different_configuration_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    evaluate(Sums(), Scripted(right), EvalSettings(limit=2), output_dir=out, progress=False)
    with pytest.raises(EvalDirError, match="differs in: temperature"):
        evaluate(Sums(), Scripted(right), EvalSettings(limit=2, temperature=0.7), output_dir=out, progress=False)
    fresh = Scripted(right)
    evaluate(Sums(), fresh, EvalSettings(limit=2, temperature=0.7), output_dir=out, overwrite=True, progress=False)
    assert len(fresh.calls) == 2


def test_concurrency_limit_and_seeds():
    responder = Scripted(right, delay=0.01)
    evaluate(Sums(12), responder, EvalSettings(concurrency=3, seed=100), progress=False)
    assert responder.most_in_flight == 3
    assert sorted(c["seed"] for _, c in responder.calls) == list(range(100, 112))


def test_a_failing_request_stops_the_run_and_keeps_what_finished(tmp_path):
    def script(question, sample):
        if question == "4+1":
            raise RuntimeError("backend down")
        return right(question, sample)
    with pytest.raises(RuntimeError, match="backend down"):
        evaluate(Sums(), Scripted(script, delay=0.05), EvalSettings(concurrency=1), output_dir=tmp_path,
                 progress=False)
    done = {json.loads(line)["id"] for line in (tmp_path / "results.jsonl").read_text().splitlines()}
    assert done == {"p0", "p1", "p2", "p3"}


def test_summarize_edge_cases_and_bad_settings():
    assert summarize([], 1)["accuracy"] is None
    one = summarize([{"id": "a", "score": 1.0, "correct": True, "finished": True, "completion_tokens": 2,
                      "prompt_tokens": 1}], 1)
    assert one["accuracy"] == 1.0 and one["stderr"] is None
    for bad in (dict(n=0), dict(limit=0), dict(max_tokens=0), dict(temperature=-1), dict(concurrency=0)):
        with pytest.raises(ValueError):
            evaluate(Sums(), Scripted(right), EvalSettings(**bad), progress=False)
