"""The quickstart end to end at a tiny size (its real numbers are measured, not tested: see README)."""

from __future__ import annotations

import json

from recipes.__main__ import main as cookbook_main


def test_quickstart_writes_summary_and_run_directory(tmp_path, capsys):
    log = tmp_path / "qs"
    assert cookbook_main(["quickstart", "max_steps=4", "n_train=256", "n_test=8", "n_show=2", "progress=False",
                          f"log_path={log}"]) == 0
    summary = json.loads((log / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["seconds"] > 0
    assert 0.0 <= summary["accuracy_before"] <= 1.0 and 0.0 <= summary["accuracy_after"] <= 1.0
    for name in ("config.json", "metrics.jsonl", "checkpoints.jsonl", "log.txt"):
        assert (log / name).is_file()
    rows = [json.loads(line) for line in (log / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and "addition/accuracy" in rows[-1]
    assert rows[-1]["addition/accuracy"] == summary["accuracy_after"]
    out = capsys.readouterr().out
    assert "before training" in out and "after training" in out and "held-out accuracy" in out
