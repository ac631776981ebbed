"""The GPU suite's dry run on the CPU: every stage runs its real code at toy sizes, so the one
command a GPU loan depends on cannot rot while no GPU is available."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import gpu_suite
from bench.models import get_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The dry run as the GPU machine would run it: its image has no ``datasets`` package (too big
    to carry), so here a stand-in that fails on import shadows the real one."""
    out, work = tmp_path_factory.mktemp("suite-out"), tmp_path_factory.mktemp("suite-work")
    hidden = tmp_path_factory.mktemp("no-datasets")
    (hidden / "datasets").mkdir()
    (hidden / "datasets" / "__init__.py").write_text("raise ImportError('datasets is not on the GPU image')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hidden), str(REPO),
                                                                     os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_suite", "--dry-run", "--out", str(out),
                           "--work", str(work), "--budget-s", "2400"], cwd=REPO, capture_output=True, text=True,
                          timeout=3000, env=env)
    return out, proc


def test_dry_run_passes_every_stage_and_writes_its_results(dry_run):
    out, proc = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = {p.name for p in out.iterdir()}
    stages = [s.name for s in gpu_suite.STAGES]
    assert files == {f"{s}.json" for s in stages} | {"summary.md", "log.txt"}
    assert len(files) <= 8  # what the GPU machine sends back
    for stage in stages:
        assert json.loads((out / f"{stage}.json").read_text())["ok"], stage
    probes = json.loads((out / "probes.json").read_text())["probes"]
    assert set(probes) == set(gpu_suite_probe_names()) and all(p["ok"] for p in probes.values())
    loops = json.loads((out / "loops.json").read_text())["loops"]
    assert set(loops) == {"sft", "rl/addition", "dpo/addition", "distill/on_policy", "sdk/serve-tinker", "packing"}
    assert set(loops["packing"]["result"]["sides"]) == {"unpacked", "packed 256", "packed 1024"}
    summary = (out / "summary.md").read_text()
    assert all(f"| {s} | ok |" in summary for s in stages)
    assert "decode b=1 tok/s" in summary and "static vs eager b=1" in summary
    compiled = json.loads((out / "bench.json").read_text())["compile"]["static"]["rows"]
    assert [r["rows"] for r in compiled] == [1, 8] and all(r["compiled_same_tokens"] for r in compiled)
    assert "torch.compile ablation (tiny, static path)" in summary


def gpu_suite_probe_names() -> tuple[str, ...]:
    from bench.gpu_probes import PROBES

    return PROBES


def test_a_stage_past_its_time_box_is_killed_and_recorded(tmp_path):
    ctx = gpu_suite.Context(out=tmp_path, work=tmp_path, dry_run=True, device="cpu",
                            deadline=time.monotonic() + 60, log=tmp_path / "log.txt")
    start = time.monotonic()
    result = ctx.run("sleeper", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"],
                     limit=1.5)
    assert result["timed_out"] and result["rc"] is None and time.monotonic() - start < 10
    assert "started" in result["tail"] and "sleeper" in (tmp_path / "log.txt").read_text()
    # the limit never exceeds what is left of the budget
    ctx.deadline = time.monotonic() + 1.0
    assert ctx.run("short", [sys.executable, "-c", "import time; time.sleep(30)"], limit=100)["timed_out"]


def test_speed_rows_report_targets_and_bandwidth_fraction():
    model = get_model("tiny").as_dict()
    bench = {"models": {"qwen3-0.6b": {
        "results": {"meta": {"models": {"qwen3-0.6b": {**model, "name": "qwen3-0.6b"}}}, "rows": [
            {"workload": "decode b=1", "ours": 500.0, "baseline": 100.0},
            {"workload": "decode b=64", "ours": 10_000.0, "baseline": 5_000.0},
            {"workload": "train", "ours": 9_000.0, "extra": {"mfu_ours": 0.25, "mfu_baseline": 0.1}, "mem_ours": None},
        ]},
        "static": {"rows": [{"rows": 1, "static_tok_s": 500.0, "eager_tok_s": 50.0, "same_tokens": True}]}}}}
    rows = {r["what"]: r for r in gpu_suite.speed_rows(bench, "NVIDIA H200")}
    assert rows["decode b=1 tok/s"]["meets"] is True and rows["decode b=64 tok/s"]["meets"] is False
    assert rows["train MFU %"]["ours"] == 25.0 and rows["train MFU %"]["meets"] is True
    # 500 steps/s x (weights + a 112-token KV cache) in bf16 over the H200's 4.8 TB/s
    step_bytes = 2 * (model["linear_params"] + 112 * model["layers"] * 2 * model["kv_heads"] * model["head_dim"])
    assert f"{100 * 500 * step_bytes / 4.8e12:.1f}% of HBM" in rows["decode b=1 tok/s"]["note"]
    assert rows["static vs eager b=1"]["target"] is None


def test_a_killed_pytest_still_reports_each_test_it_ran():
    output = ("tests/backend/test_a.py::test_one PASSED [ 10%]\n"
              "tests/backend/test_a.py::test_two[x-1] FAILED [ 20%]\n"
              "tests/backend/test_b.py::test_three SKIPPED (needs CUDA) [ 30%]\n"
              "tests/backend/test_b.py::test_four ERROR [ 40%]\n"
              "tests/backend/test_b.py::test_five XFAIL [ 50%]\n"
              "tests/supervised/test_c.py::test_six[config.json cut off-finished] PASSED [ 60%]\n"
              "some other line mentioning PASSED\n")
    counts = gpu_suite._verbose_counts(output)
    assert counts["passed"] == 2 and counts["skipped"] == 2
    assert [f["test"] for f in counts["failed"]] == ["tests/backend/test_a.py::test_two[x-1]",
                                                     "tests/backend/test_b.py::test_four"]


@pytest.mark.parametrize("box", ["probes", "probes=x", "nosuchstage=10"])
def test_a_bad_box_is_a_usage_error(box, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_suite.main(["--dry-run", "--out", str(tmp_path), "--box", box])
    assert exc.value.code == 2 and "--box" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing ran
