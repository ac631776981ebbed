"""The RL recipes end to end at toy sizes: math from ../shared/data, guess-the-number, tool use, addition."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cookbook.tokenizer_utils import get_tokenizer
from recipes.rl import addition, guess_number, math, tool_use
from renderers import get_renderer

SHARED_DIR = Path(__file__).resolve().parents[3] / "shared"
GSM8K = SHARED_DIR / "data" / "gsm8k"


@pytest.fixture()
def common(tmp_path, monkeypatch):
    monkeypatch.setenv("COOKBOOK_CHECKPOINT_ROOT", str(tmp_path / "ckpt"))
    return dict(progress=False, lora_rank=4, log_groups=1)


@pytest.mark.skipif(not (GSM8K / "train.jsonl").exists(), reason="needs ../shared/data/gsm8k")
def test_gsm8k_environment_runs_two_steps_on_tiny(tmp_path, common, monkeypatch):
    monkeypatch.setenv("COOKBOOK_EVAL_DATA", str(SHARED_DIR / "data"))
    config = math.Config(base_model="tiny", source=str(GSM8K / "train.jsonl"), max_problems=8, groups_per_batch=2,
                         group_size=2, max_tokens=8, max_steps=2, n_eval=2, eval_every=1,
                         log_path=str(tmp_path / "math"), **common)
    result = math.main(config)
    rows = result.metrics
    assert [r["step"] for r in rows] == [0, 1]
    assert all("reward/mean" in r and "eval/gsm8k/accuracy" in r for r in rows)
    assert "#### " not in (tmp_path / "math" / "episodes.txt").read_text()  # prompts hold questions only


def test_guess_number_episodes_are_multi_turn_and_the_weak_player_solves(tmp_path, common):
    rng = random.Random(0)
    episode = guess_number.weak_player_episode(11, 16, rng)
    assert episode[-1] == {"role": "assistant", "content": "11"}
    assert all(m["content"] in ("higher", "lower") for m in episode[2:-1:2])
    config = guess_number.Config(warmup_steps_sft=2, max_steps=1, groups_per_batch=2, group_size=2,
                                 log_path=str(tmp_path / "gn"), **common)
    summary = guess_number.main(config)
    assert set(summary["before"]) == {"reward", "solved", "guesses"} and summary["steps"] == 1
    assert (tmp_path / "gn_sft_warmup" / "checkpoints.jsonl").exists()


def test_calculator_env_runs_tool_calls_and_grades_the_final_answer():
    env = tool_use.CalculatorEnv(12, 34)
    transcript = tool_use.solved_transcript(12, 34)
    first = env.step(transcript[1], True)
    assert not first.done and first.new_messages == [{"role": "tool", "content": "408", "tool_call_id": "call_0"}]
    final = env.step(transcript[3], True)
    assert final.done and final.reward == 1.0 and final.metrics["tool_call_ok"] == 1.0
    assert tool_use.calculate("(2+3)*4/2") == "10"
    with pytest.raises(ValueError):
        tool_use.calculate("__import__('os')")


def test_tool_transcripts_render_and_train_with_the_tiny_renderer():
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    transcript = tool_use.solved_transcript(12, 34)
    tokens, weights = renderer.build_supervised_example(transcript, "all_assistant_messages",
                                                        tools=[tool_use.CALCULATOR])
    text = renderer.decode(tokens.to_ints())
    assert '<tool_call>\n{"name": "calculator", "arguments": {"expression": "12*34"}}\n</tool_call>' in text
    assert "<|im_start|>tool\n408<|im_end|>" in text
    trained = renderer.decode([t for t, w in zip(tokens.to_ints(), weights) if w])
    assert "12*34" in trained and "408<|im_end|>" in trained and "Evaluate" not in trained


def test_addition_recipe_writes_its_summary(tmp_path, common):
    config = addition.Config(n_train=64, n_test=8, groups_per_batch=4, group_size=2, max_steps=2, eval_every=1,
                             log_path=str(tmp_path / "add"), **common)
    summary = addition.main(config)
    saved = json.loads((tmp_path / "add" / "summary.json").read_text())
    assert saved["steps"] == 2 and saved["accuracy_before"] == summary["accuracy_before"]
