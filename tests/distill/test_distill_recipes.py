"""The on-policy distillation recipe end to end at toy sizes, between checkpoints of a short quickstart run."""

from __future__ import annotations

import json

import pytest
from trained_tiny import checkpoints, one_compute_thread, quickstart_run

from cookbook.errors import ConfigError
from recipes.distill import on_policy


@pytest.fixture(scope="module", autouse=True)
def _one_compute_thread():
    with one_compute_thread():
        yield


def test_on_policy_recipe_measures_the_student_before_and_after(tmp_path):
    records = checkpoints(quickstart_run())
    student = next(r["state_path"] for r in records if r["step"] == 3)
    teacher = next(r["sampler_path"] for r in records if r["final"])
    config = on_policy.Config(teacher_path=teacher, load_checkpoint_path=student, n_train=64, n_test=8, kl_samples=2,
                              groups_per_batch=4, group_size=2, max_steps=2, eval_every=1, lora_rank=32,
                              progress=False, log_groups=1, log_path=str(tmp_path / "opd"))
    summary = on_policy.main(config)
    saved = json.loads((tmp_path / "opd" / "summary.json").read_text())
    assert saved == summary and saved["steps"] == 2 and saved["teacher"] == teacher
    for key in ("teacher_accuracy", "accuracy_before", "accuracy_after"):
        assert 0.0 <= saved[key] <= 1.0, key
    assert all(isinstance(saved[k], float) for k in ("reverse_kl_before", "reverse_kl_after"))
    rows = [json.loads(line) for line in (tmp_path / "opd" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    assert all({"distill/reverse_kl", "addition/accuracy", "heldout/reverse_kl", "env/correct"} <= r.keys()
               for r in rows)


@pytest.mark.parametrize("missing", ["teacher_path", "load_checkpoint_path"])
def test_on_policy_recipe_on_tiny_asks_for_both_checkpoints(tmp_path, missing):
    paths = dict(teacher_path="local://qs/sampler_weights/final", load_checkpoint_path="local://qs/weights/step_000250")
    config = on_policy.Config(**{**paths, missing: None}, log_path=str(tmp_path / "opd"))
    with pytest.raises(ConfigError, match="cookbook quickstart save_every=50"):
        on_policy.main(config)
    assert not (tmp_path / "opd").exists()
