"""Sweeps over a quickstart run's checkpoints x benchmarks (table, CSV, PNG; finished cells reused) and
``cookbook plot`` over run directories."""

from __future__ import annotations

import csv
import json

import pytest
from trained_tiny import checkpoints

from cookbook.errors import ConfigError, MissingFileError
from evals import plots, sweeps
from recipes.__main__ import main as cookbook_main


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_sweep_writes_table_csv_and_plot_then_reuses_finished_cells(qs_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", f"runs={qs_run}", "benchmarks=addition,addition:1", "limit=12", f"output_dir={out}",
            "progress=False"]
    assert cookbook_main(args) == 0
    assert "0 cells reused, 4 computed" in capsys.readouterr().out
    table = (out / "results.md").read_text().splitlines()
    assert table[0] == "| run | checkpoint | step | addition | addition:1 |"
    assert [line.split("|")[2].strip() for line in table[2:]] == ["step_000003", "final"]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["checkpoint"], r["step"]) for r in rows] == [("step_000003", "3"), ("final", "6")]
    assert rows[1]["path"] == next(c["sampler_path"] for c in checkpoints(qs_run) if c["final"])
    for row in rows:
        assert 0.0 <= float(row["addition"]) <= 1.0 and row["addition:1_stderr"] != ""
    width, height = png_size(out / "results.png")
    assert width > 400 and height > 200
    cell = json.loads((out / "cells" / "qs" / "final" / "addition" / "summary.json").read_text())
    assert cell["examples"] == 12 and cell["accuracy"] == float(rows[1]["addition"])

    def no_sampling(*args, **kwargs):
        raise AssertionError("a finished cell was computed again")
    monkeypatch.setattr(sweeps, "sampling_client", no_sampling)
    before = (out / "results.md").read_text()
    assert cookbook_main(args) == 0
    assert "4 cells reused, 0 computed" in capsys.readouterr().out
    assert (out / "results.md").read_text() == before


def test_sweep_computes_only_missing_cells(qs_run, tmp_path, capsys):
    out = tmp_path / "sweep"
    final = next(c["sampler_path"] for c in checkpoints(qs_run) if c["final"])
    base = dict(benchmarks="addition", checkpoints=final, limit=6, output_dir=str(out), progress=False)
    sweeps.sweep(sweeps.SweepConfig(**base))
    rows = sweeps.sweep(sweeps.SweepConfig(**{**base, "benchmarks": "addition,addition:1"}))
    assert "1 cells reused, 1 computed" in capsys.readouterr().out
    assert [(r["checkpoint"], r["step"], r["benchmark"]) for r in rows] == [
        ("final", None, "addition"), ("final", None, "addition:1")]  # a sampler path has no step number
    grown = sweeps.sweep(sweeps.SweepConfig(**{**base, "limit": 8}))  # more problems: the cell is extended
    assert grown[0]["examples"] == 8


def test_sweep_user_errors(tmp_path):
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        sweeps.sweep(sweeps.SweepConfig(benchmarks="addition", output_dir=str(tmp_path)))
    with pytest.raises(MissingFileError, match="checkpoints.jsonl"):
        sweeps.sweep(sweeps.SweepConfig(benchmarks="addition", runs=str(tmp_path), output_dir=str(tmp_path)))
    with pytest.raises(ConfigError, match="unknown benchmark"):
        sweeps.sweep(sweeps.SweepConfig(benchmarks="nope", checkpoints="x", output_dir=str(tmp_path)))


def write_run(path, losses, eval_every=2):
    path.mkdir(parents=True)
    with open(path / "metrics.jsonl", "w") as f:
        for step, loss in enumerate(losses):
            row = {"step": step, "train/loss": loss, "learning_rate": 1e-3 * (1 - step / len(losses))}
            if (step + 1) % eval_every == 0:
                row.update({"test/nll": loss * 1.1, "eval/addition/accuracy": step / len(losses)})
            f.write(json.dumps(row) + "\n")


def test_plot_overlays_runs_in_one_png(qs_run, tmp_path, capsys):
    other = tmp_path / "other"
    write_run(other, [3.0 / (1 + s) for s in range(30)])
    out = tmp_path / "curves.png"
    assert cookbook_main(["plot", str(qs_run), str(other), f"out={out}"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and png_size(out)[0] > 800
    fig, axes = plots.figure_for_runs([qs_run, other])
    titles = [ax.get_title() for ax in axes]
    assert titles == ["train loss (train/loss)", "test NLL (test/nll)", "eval scores", "learning rate (learning_rate)"]
    loss_labels = [line.get_label() for line in axes[0].get_lines() if not line.get_label().startswith("_")]
    assert loss_labels == ["qs", "other"]
    eval_labels = [line.get_label() for line in axes[2].get_lines()]
    assert eval_labels == ["qs: addition/accuracy", "other: eval/addition/accuracy"]
    plots.close(fig)


def test_plot_single_run_default_path_chosen_metrics_and_errors(tmp_path, capsys):
    run = tmp_path / "run"
    write_run(run, [1.0, 0.5, 0.25, 0.2])
    assert cookbook_main(["plot", str(run)]) == 0
    assert (run / "metrics.png").is_file()
    assert cookbook_main(["plot", str(run), "metrics=train/loss,eval/*/accuracy", f"out={tmp_path / 'x.png'}"]) == 0
    assert (tmp_path / "x.png").is_file()
    capsys.readouterr()
    assert cookbook_main(["plot", str(tmp_path / "missing")]) == 2
    assert cookbook_main(["plot", str(run), "metrics=reward/mean"]) == 2
    assert cookbook_main(["plot", str(run), "colour=red"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("error:") for line in err)
    assert cookbook_main(["plot", "--help"]) == 0
