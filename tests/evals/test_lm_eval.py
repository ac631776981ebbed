"""lm-evaluation-harness against ``cookbook serve`` on a quickstart checkpoint: tasks defined here on a
local file of the quickstart's held-out additions score what our own scoring of the same items gives:
a multiple-choice task (log-likelihoods from the completions endpoint's prompt logprobs) against
log-likelihoods computed directly with ``compute_logprobs``, and generation tasks through the chat
endpoint against ``cookbook eval`` on the same problems."""

from __future__ import annotations

import json
import random
from pathlib import Path

import leading_digit
import pytest
from tinker import types
from trained_tiny import checkpoints

import cookbook
from cookbook.primitives import ready
from cookbook.tokenizer_utils import get_tokenizer
from evals.benchmarks import get_benchmark
from recipes.__main__ import main as cookbook_main

pytest.importorskip("lm_eval")

N = 12
MC_TASK = """task: cookbook_addition_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}="
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
"""
GEN_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  max_gen_toks: 8
  do_sample: false
  temperature: 0
{scoring}
"""
UTILS = """def leading_digit(doc, results):
    return {"acc": float(results[0].strip()[:1] == doc["answer"][:1])}
"""


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    rng = random.Random(0)
    rows = []
    for problem in get_benchmark("addition").examples(N):
        answer = int(problem.reference)
        choices = [str(answer), str(answer + 1), str(answer - 10), str(answer + 11)]
        rng.shuffle(choices)
        rows.append({"id": int(problem.id), "question": problem.messages[-1]["content"], "answer": problem.reference,
                     "choices": choices, "label": choices.index(problem.reference)})
    data = folder / "additions.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "mc.yaml").write_text(MC_TASK.format(data=data))
    (folder / "exact.yaml").write_text(GEN_TASK.format(name="cookbook_addition_exact", data=data,
                                                       scoring="metric_list:\n  - metric: exact_match"))
    (folder / "lead.yaml").write_text(GEN_TASK.format(
        name="cookbook_addition_leading_digit", data=data,
        scoring="process_results: !function utils.leading_digit\nmetric_list:\n  - metric: acc"))
    (folder / "utils.py").write_text(UTILS)
    return folder, rows


@pytest.fixture(scope="module", autouse=True)
def _leading_digit_benchmark():
    with leading_digit.registered():
        yield


@pytest.fixture(scope="module")
def final(qs_run) -> str:
    return next(r["sampler_path"] for r in checkpoints(qs_run) if r["final"])


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def run_eval(tmp_path: Path, benchmark: str, checkpoint: str) -> tuple[dict, list[dict], Path]:
    out = tmp_path / benchmark.split("@")[-1]
    assert cookbook_main(["eval", f"benchmark={benchmark}", f"checkpoint={checkpoint}", f"output_dir={out}",
                          f"limit={N}", "progress=False"]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return json.loads((out / "summary.json").read_text()), sorted(rows, key=lambda r: int(r["id"])), out


def test_multiple_choice_log_likelihoods_match_our_own(task_dir, final, tmp_path):
    folder, rows = task_dir
    summary, results, out = run_eval(tmp_path, f"lm_eval:{folder}@cookbook_addition_mc", final)

    # our own scoring: the log-likelihood of " <choice>" after "<question>=", summed over its tokens
    tokenizer = get_tokenizer("tiny")
    sampler = ready(cookbook.service_client("local").create_sampling_client(model_path=final))
    ours, correct = [], []
    for row in rows:
        context = tokenizer.encode(row["question"] + "=", add_special_tokens=False)
        scores = []
        for choice in row["choices"]:
            whole = tokenizer.encode(row["question"] + "= " + choice, add_special_tokens=False)
            logprobs = sampler.compute_logprobs(types.ModelInput.from_ints(whole)).result()
            scores.append(sum(logprobs[len(context):]))
        ours.append(scores)
        correct.append(max(range(len(scores)), key=scores.__getitem__) == row["label"])
    assert summary["examples"] == N and summary["accuracy"] == pytest.approx(sum(correct) / N)
    assert summary["lm_eval/cookbook_addition_mc/acc,none"] == pytest.approx(sum(correct) / N)
    assert [r["correct"] for r in results] == correct
    samples = sorted((json.loads(line) for line in (out / "lm_eval" / "samples.jsonl").read_text().splitlines()),
                     key=lambda s: s["doc_id"])
    theirs = [[response[0] for response in sample["filtered_resps"]] for sample in samples]
    assert theirs == [pytest.approx(scores, abs=1e-4) for scores in ours]


def test_generation_through_the_chat_endpoint_matches_cookbook_eval(task_dir, final, tmp_path):
    folder, _ = task_dir
    exact, exact_rows, _ = run_eval(tmp_path, "addition", final)
    lead, _, _ = run_eval(tmp_path, "addition_leading_digit", final)
    assert 0 < lead["accuracy"] < 1  # a score that tells answers apart
    harness, rows, _ = run_eval(tmp_path, f"lm_eval:chat:{folder}@cookbook_addition_exact", final)
    assert harness["accuracy"] == exact["accuracy"] and harness["examples"] == N
    assert [r["response"] for r in rows] == [r["response"] for r in exact_rows]  # the same answers
    harness_lead, rows, _ = run_eval(tmp_path, f"lm_eval:chat:{folder}@cookbook_addition_leading_digit", final)
    assert harness_lead["accuracy"] == lead["accuracy"]
    assert [r["score"] for r in rows] == [float(leading_digit.leading_digit(r["response"], r["reference"]))
                                          for r in exact_rows]


def test_unknown_lm_eval_tasks_are_user_errors(task_dir, tmp_path, capsys):
    folder, _ = task_dir
    assert cookbook_main(["eval", f"benchmark=lm_eval:{folder}@no_such_task", "model=tiny",
                          f"output_dir={tmp_path}", "progress=False"]) == 2
    assert "no task 'no_such_task' in" in capsys.readouterr().err
    assert cookbook_main(["eval", "benchmark=lm_eval:arc_easy", "model=tiny", "n=2", f"output_dir={tmp_path}"]) == 2
