"""The DPO recipes run end to end on small settings."""

from __future__ import annotations

import json

import pytest

from recipes.dpo import addition, chat_dpo


def test_chat_dpo_on_a_jsonl_file(tmp_path):
    path = tmp_path / "prefs.jsonl"
    with open(path, "w") as f:
        for a in range(12):
            transcript = f"\n\nHuman: {a}+1?\n\nAssistant: "
            f.write(json.dumps({"chosen": transcript + str(a + 1), "rejected": transcript + str(a + 2)}) + "\n")
    config = chat_dpo.Config(data=chat_dpo.DataConfig(source=str(path), test_size=4), batch_size=4, max_steps=2,
                             lora_rank=4, learning_rate=1e-3, log_path=str(tmp_path / "run"), progress=False)
    summary = chat_dpo.main(config)
    assert set(summary) >= {"test/loss", "test/accuracy", "test/policy_accuracy", "test/margin"}
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [0, 1] and all("dpo/loss" in r for r in rows)


@pytest.mark.parametrize("comparisons", ["carry", "offset"])
def test_dpo_addition_sft_then_dpo(tmp_path, comparisons):
    config = addition.Config(comparisons=comparisons, sft_steps=2, n_train=16, n_test=8, batch_size=4, max_steps=2,
                             eval_every=1, lora_rank=4, log_path=str(tmp_path / "dpo"), progress=False)
    summary = addition.main(config)
    assert summary["steps"] == 2 and summary["start_checkpoint"]  # the SFT ran and DPO started from it
    assert 0 <= summary["policy_accuracy_before"] <= 1 and 0 <= summary["policy_accuracy_after"] <= 1
    assert summary["reference_calls"] == 2 * (8 + 8)  # each train and test comparison scored once
    assert json.loads((tmp_path / "dpo" / "summary.json").read_text()) == summary
    assert (tmp_path / "dpo_sft" / "metrics.jsonl").exists()
