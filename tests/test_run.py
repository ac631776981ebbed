"""The run skeleton with a fake service: checkpoint cadence, the final save only on success, closing on
an exception and resuming after it, the finished-run shortcut, pipelining, sub-runs and summaries."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fakes import Done

from cookbook.config import LoopConfig
from cookbook.run import Run, sub_run, sub_run_path, write_summary
from cookbook.supervised.train import TrainConfig


class FakeTrainingClient:
    def __init__(self, origin: str):
        self.origin = origin

    def save_state(self, name):
        return Done(SimpleNamespace(path=f"fake://{name}"))

    def save_weights_for_sampler(self, name):
        return Done(SimpleNamespace(path=f"fake://sampler/{name}"))


class FakeService:
    """Makes fake training clients; records how each was made."""

    def __init__(self):
        self.made = []

    def _make(self, origin):
        self.made.append(origin)
        return FakeTrainingClient(origin)

    def create_lora_training_client(self, base_model, rank=32, seed=None):
        return self._make(f"new {base_model} rank {rank} seed {seed}")

    def create_training_client_from_state(self, path):
        return self._make(f"weights of {path}")

    def create_training_client_from_state_with_optimizer(self, path):
        return self._make(f"state of {path}")


class Crash(Exception):
    pass


def run_steps(config, service, total, crash_at=None):
    run = Run(config, total, service=service, description="test")
    if run.finished:
        return run
    with run:
        for step in run.steps():
            if step == crash_at:
                raise Crash()
            run.end_step(step, {"value": float(step)})
    return run


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cadence_final_save_crash_and_resume(tmp_path):
    config = LoopConfig(log_path=str(tmp_path / "run"), save_every=2, progress=False, lora_rank=4)
    service = FakeService()
    with pytest.raises(Crash):
        run_steps(config, service, 5, crash_at=3)
    assert [c["step"] for c in lines(tmp_path / "run" / "checkpoints.jsonl")] == [2]  # no final after a crash
    assert [m["step"] for m in lines(tmp_path / "run" / "metrics.jsonl")] == [0, 1, 2]

    result = run_steps(config, service, 5).result
    assert service.made == ["new tiny rank 4 seed 0", "state of fake://step_000002"]
    assert (result.steps, result.resumed_from, result.final_state_path) == (5, 2, "fake://final")
    assert [m["step"] for m in result.metrics] == [0, 1, 2, 3, 4] and result.run_dir == tmp_path / "run"
    records = lines(tmp_path / "run" / "checkpoints.jsonl")
    assert [(c["step"], c["final"]) for c in records] == [(2, False), (4, False), (5, True)]

    again = run_steps(config, service, 5)  # finished: nothing runs, the final checkpoint is the result
    assert again.finished and again.result.final_sampler_path == "fake://sampler/final"
    assert service.made[-1] == "weights of fake://final" and len(lines(tmp_path / "run" / "metrics.jsonl")) == 5
    with pytest.raises(RuntimeError, match="finished run"):
        with again:
            pass


def test_pipelined_steps_wait_where_a_checkpoint_is_due(tmp_path):
    run = Run(LoopConfig(log_path=str(tmp_path / "run"), save_every=2, progress=False), 5, service=FakeService())
    events = []

    def submit(step):
        events.append(f"s{step}")
        return step

    def finish(step):
        events.append(f"f{step}")
        run.end_step(step, {})
    with run:
        run.pipelined(submit, finish)
    assert events == ["s0", "s1", "f0", "f1", "s2", "s3", "f2", "f3", "s4", "f4"]


def test_sub_runs_share_the_run_settings_and_summaries_land_in_the_run_directory(tmp_path):
    parent = LoopConfig(log_path=str(tmp_path / "rl"), base_model="m", lora_rank=8, seed=3, backend="tinker",
                        if_exists="overwrite", progress=False, learning_rate=0.5)
    warm_up = sub_run(parent, TrainConfig, "sft", max_steps=7)
    assert warm_up.log_path == str(tmp_path / "rl") + "_sft"
    assert (warm_up.base_model, warm_up.lora_rank, warm_up.seed, warm_up.backend, warm_up.if_exists,
            warm_up.max_steps) == ("m", 8, 3, "tinker", "overwrite", 7)
    assert warm_up.learning_rate == TrainConfig().learning_rate  # optimizer settings are the sub-run's own
    assert sub_run_path("runs/x", "rl", nested=True) == "runs/x/rl"

    config = LoopConfig(log_path=str(tmp_path / "run"), progress=False)
    result = run_steps(config, FakeService(), 2).result
    summary = result.write_summary({"accuracy": 0.5, "steps": 99})
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    assert summary == {"accuracy": 0.5, "steps": 99, "checkpoint": "fake://final",
                       "sampler_checkpoint": "fake://sampler/final", "log_path": str(tmp_path / "run")}
    assert write_summary(tmp_path / "new" / "dir", {"a": 1}) == {"a": 1}
    assert (tmp_path / "new" / "dir" / "summary.json").exists()


def test_an_option_added_later_with_default_none_keeps_old_run_directories_resumable(tmp_path):
    """Top-level and section options that are None count as absent, so a run written before they
    existed resumes; a set value is a different configuration."""
    from cookbook.run_dir import RunDir, RunDirError

    old = {"learning_rate": 1e-3, "data": {"source": "a.jsonl"}}
    RunDir(tmp_path / "run", old)
    RunDir(tmp_path / "run", {**old, "pack_length": None, "data": {"source": "a.jsonl", "mix": None}})
    with pytest.raises(RunDirError, match="data"):
        RunDir(tmp_path / "run", {**old, "data": {"source": "a.jsonl", "mix": "b.jsonl=1"}})
