"""The RLHF recipe end to end on tiny at toy sizes: SFT -> reward model -> RL against it, each stage
in its own run directory, and a rerun that reuses the finished stages."""

from __future__ import annotations

import json

import pytest

from recipes.rl import rlhf


@pytest.mark.parametrize("rm_kind", ["likelihood", "judge"])
def test_rlhf_runs_end_to_end_and_a_rerun_reuses_every_stage(tmp_path, monkeypatch, rm_kind):
    monkeypatch.setenv("COOKBOOK_CHECKPOINT_ROOT", str(tmp_path / "ckpt"))
    config = rlhf.Config(sft_steps=3, sft_batch_size=8, rm_kind=rm_kind, rm_comparisons=16, rm_batch_size=4,
                         rm_max_steps=2, n_train=32, n_test=8, groups_per_batch=2, group_size=2, max_steps=2,
                         eval_every=1, lora_rank=4, log_groups=1, progress=False, log_path=str(tmp_path / "rlhf"))
    summary = rlhf.main(config)
    saved = json.loads((tmp_path / "rlhf" / "summary.json").read_text())
    assert saved == summary
    for rm in (summary["rm_before"], summary["rm_after"]):  # held-out comparisons, and the policy's own mistakes
        assert set(rm) == {"accuracy", "margin", "loss", "on_policy_pairs", "on_policy_accuracy", "on_policy_margin",
                           "on_policy_loss"}
        assert rm["on_policy_pairs"] > 0
    assert set(summary["policy_before"]) == set(summary["policy_after"]) == {"reward", "accuracy", "parse_ok"}
    assert summary["rl_steps"] == 2
    for stage, steps in (("sft", 3), ("reward_model", 2), ("rl", 2)):
        rows = [json.loads(line) for line in open(tmp_path / "rlhf" / stage / "metrics.jsonl")]
        assert [r["step"] for r in rows] == list(range(steps)), stage
    rl_rows = [json.loads(line) for line in open(tmp_path / "rlhf" / "rl" / "metrics.jsonl")]
    assert all("env/correct" in r and "env/parse_ok" in r and "eval/reward" in r for r in rl_rows)
    assert rl_rows[-1]["eval/accuracy"] == summary["policy_after"]["accuracy"]

    again = rlhf.main(config)  # every stage is finished: nothing trains, the same checkpoints come back
    for key in ("start_checkpoint", "reward_model", "checkpoint"):
        assert again[key] == summary[key], key
    for key in ("rm_after", "policy_after"):
        assert again[key] == pytest.approx(summary[key], abs=1e-5), key
    for stage in ("sft", "reward_model", "rl"):
        assert len(open(tmp_path / "rlhf" / stage / "metrics.jsonl").readlines()) == {"sft": 3}.get(stage, 2)
