"""``cookbook eval`` end to end on the tiny model: a quickstart checkpoint scores exactly what the
quickstart's own evaluation logged, gsm8k runs on tiny, and user errors are one line."""

from __future__ import annotations

import json

import pytest
from trained_tiny import checkpoints, metrics

import cookbook
from cookbook.completers import MessageCompleter
from cookbook.hooks import accuracy_hook
from cookbook.primitives import ready
from cookbook.tasks import AdditionTask
from cookbook.tokenizer_utils import get_tokenizer
from evals.run import cli
from recipes.__main__ import main as cookbook_main
from renderers import get_renderer


def test_addition_on_quickstart_checkpoints_matches_the_quickstarts_own_accuracy(qs_run, tmp_path):
    logged = {row["step"] + 1: row["addition/accuracy"] for row in metrics(qs_run) if "addition/accuracy" in row}
    records = [r for r in checkpoints(qs_run) if r["state_path"]]
    assert {r["step"] for r in records} == {3, 6} and set(logged) == {3, 6}
    for record in records:
        out = tmp_path / f"state-{record['name']}"
        assert cookbook_main(["eval", "benchmark=addition", f"checkpoint={record['state_path']}",
                              f"output_dir={out}", "progress=False"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["examples"] == 200 and summary["max_tokens"] == 8 and summary["temperature"] == 0.0
        assert summary["accuracy"] == logged[record["step"]], record["name"]

    # the same answers, one by one, as the quickstart's completer gives for the final weights
    final = next(r for r in checkpoints(qs_run) if r["final"])
    sampler = ready(cookbook.service_client("local").create_sampling_client(model_path=final["sampler_path"]))
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    _, problems = AdditionTask(2).held_out_split(384, 200, seed=0)
    expected = [c.text for c in MessageCompleter(sampler, renderer, max_tokens=8).complete_many(
        [p.messages for p in problems])]
    out = tmp_path / "final"
    assert cli(["benchmark=addition", f"checkpoint={final['sampler_path']}", f"output_dir={out}",
                "progress=False", "concurrency=7"]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["response"] for r in sorted(rows, key=lambda r: int(r["id"]))] == expected
    assert json.loads((out / "summary.json").read_text())["accuracy"] == accuracy_hook(
        AdditionTask(2), problems, renderer, max_tokens=8)(sampler)["accuracy"]


def test_gsm8k_runs_end_to_end_on_tiny(data_dir, tmp_path, capsys):
    out = tmp_path / "gsm8k"
    assert cookbook_main(["eval", "benchmark=gsm8k", "model=tiny", "limit=20", "max_tokens=24", f"data_dir={data_dir}",
                          f"output_dir={out}", "progress=False"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == 20 and summary["benchmark"] == "gsm8k" and summary["checkpoint"] is None
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["completion_tokens"] > 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and {"prompt", "response", "extracted", "correct"} <= set(rows[0])
    assert "gsm8k: accuracy" in capsys.readouterr().out
    # the same command again reuses every example
    assert cookbook_main(["eval", "benchmark=gsm8k", "limit=20", "max_tokens=24", f"data_dir={data_dir}",
                          f"output_dir={out}", "progress=False"]) == 0
    assert json.loads((out / "summary.json").read_text())["reused_examples"] == 20


@pytest.mark.parametrize("args,message", [
    (["benchmark=gsm9k"], "unknown benchmark 'gsm9k'"),
    (["benchmark=addition", "backend=openai", "checkpoint=x"], "backend=openai"),
    (["benchmark=addition", "backend=nope"], "unknown backend"),
    (["benchmark=addition", "n=0"], "n must be >= 1"),
    (["benchmark=addition", "renderer=nope"], "renderer 'nope'"),
    (["model=tiny"], "benchmark"),
])
def test_user_errors_are_one_line(args, message, capsys, tmp_path):
    assert cookbook_main(["eval", *args, f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1


def test_help_lists_the_options(capsys):
    assert cli(["--help"]) == 0
    out = capsys.readouterr().out
    assert "benchmark" in out and "checkpoint" in out and "concurrency" in out
