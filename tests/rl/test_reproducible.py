"""RL and on-policy distillation are reproducible from the run seed: two runs of the same command
compute the same metrics and weights, and a run killed with SIGKILL and rerun ends bitwise-equal to
one that was never interrupted (CPU, fp32, ``COOKBOOK_DETERMINISTIC=1``: every rollout's sampling
seed derives from the run seed, the step, the group and the sample, and each sampling request is
decoded in a batch of its own, so its numerics do not depend on what it arrived with)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trained_tiny import checkpoints, metrics, quickstart_run

from cookbook.backend.local import checkpoints as local_checkpoints
from recipes.__main__ import main as cookbook_main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quickstart() -> dict[str, str]:
    records = checkpoints(quickstart_run())
    final = next(r for r in records if r["final"])
    return {"student": next(r["state_path"] for r in records if r["step"] == 3),
            "teacher": final["sampler_path"], "final": final["state_path"]}


def _recipes(quickstart):
    small = ["n_train=64", "n_test=4", "max_steps=4", "save_every=2", "eval_every=0", "progress=False"]
    return {
        # a six-step quickstart checkpoint almost never answers right; format_reward=-1 gives its groups
        # a reward signal (answers that parse vs ones that do not), so the runs do train
        "rl/addition": ["rl/addition", f"load_checkpoint_path={quickstart['final']}", "format_reward=-1",
                        "groups_per_batch=4", "group_size=4", *small],
        "distill/on_policy": ["distill/on_policy", f"load_checkpoint_path={quickstart['student']}",
                              f"teacher_path={quickstart['teacher']}", "kl_samples=1", "groups_per_batch=2",
                              "group_size=2", *small],
    }


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    final = next(r for r in checkpoints(run) if r["final"])
    return load_file(local_checkpoints.resolve(final["state_path"], local_checkpoints.default_root())
                     / "adapter.safetensors")


def _computed(run: Path) -> list[dict]:
    """The metrics without wall-clock times."""
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in metrics(run)]


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _kill_after_first_checkpoint(args: list[str], run: Path) -> None:
    """``cookbook run ...`` in a subprocess, killed with SIGKILL once the step-2 checkpoint is recorded."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "recipes", "run", *args, f"log_path={run}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not (run / "checkpoints.jsonl").exists() or not (run / "checkpoints.jsonl").read_text().strip():
        assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not any(r["final"] for r in checkpoints(run))  # killed mid-run, not after it finished


@pytest.mark.parametrize("recipe", ["rl/addition", "distill/on_policy"])
def test_same_seed_same_run_and_a_killed_run_resumes_bitwise(recipe, quickstart, tmp_path, monkeypatch):
    monkeypatch.setenv("COOKBOOK_DETERMINISTIC", "1")  # read by the engine at each request; the subprocess inherits it
    args = _recipes(quickstart)[recipe]
    first, second, killed = tmp_path / "first", tmp_path / "second", tmp_path / "killed"
    for run in (first, second):
        assert cookbook_main(["run", *args, f"log_path={run}"]) == 0

    start = load_file(local_checkpoints.resolve(
        quickstart["final" if recipe == "rl/addition" else "student"], local_checkpoints.default_root())
        / "adapter.safetensors")
    assert not _same_weights(_final_weights(first), start)  # the runs did train
    assert any(row.get("optim/grad_norm", 0) > 0 for row in metrics(first))
    assert _computed(first) == _computed(second)
    assert _same_weights(_final_weights(first), _final_weights(second))

    _kill_after_first_checkpoint(args, killed)
    assert cookbook_main(["run", *args, f"log_path={killed}"]) == 0
    assert json.loads((killed / "summary.json").read_text())["steps"] == 4
    assert "resuming from" in (killed / "log.txt").read_text()
    assert _computed(killed) == _computed(first)
    assert _same_weights(_final_weights(killed), _final_weights(first))
