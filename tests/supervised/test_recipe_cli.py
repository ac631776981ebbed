"""Recipe command lines: key=value and nested overrides, presets, --help, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cookbook.recipe_cli import RecipeArgumentError, parse_config
from recipes.__main__ import main as cookbook_main
from recipes.sl import chat_sft

REPO = Path(__file__).resolve().parents[2]


def test_overrides_nested_overrides_and_presets():
    cfg = parse_config(chat_sft.Config, ["learning_rate=0.01", "data.source=x.jsonl", "data.test_size=3"], group="sl")
    assert cfg.learning_rate == 0.01 and cfg.data.source == "x.jsonl" and cfg.data.test_size == 3
    cfg = parse_config(chat_sft.Config, ["preset=addition_tiny", "batch_size=16"], group="sl")
    assert cfg.batch_size == 16  # the command line wins over the preset
    assert cfg.max_steps == 625 and cfg.data.train_on_what == "last_assistant_message"  # from the preset


def test_unknown_key_bad_value_unknown_preset_are_clear_errors():
    with pytest.raises(RecipeArgumentError, match="learning_rat"):
        parse_config(chat_sft.Config, ["learning_rat=0.1"], group="sl")
    with pytest.raises(RecipeArgumentError, match="batch_size"):
        parse_config(chat_sft.Config, ["batch_size=many"], group="sl")
    with pytest.raises(RecipeArgumentError, match="available: addition_tiny"):
        parse_config(chat_sft.Config, ["preset=nope"], group="sl")
    with pytest.raises(RecipeArgumentError, match="key=value"):
        parse_config(chat_sft.Config, ["learning_rate"], group="sl")


def test_cli_help_and_error_exit_codes(capsys):
    assert cookbook_main(["run", "sl/chat_sft", "--help"]) == 0
    out = capsys.readouterr().out
    assert "learning_rate" in out and "data.source" in out
    assert cookbook_main(["run", "sl/chat_sft", "nonsense_key=1"]) == 2
    assert "nonsense_key" in capsys.readouterr().err
    assert cookbook_main(["run", "sl/nope"]) == 2
    assert "sl/chat_sft" in capsys.readouterr().err


def test_python_dash_m_entry_point_prints_help():
    out = subprocess.run([sys.executable, "-m", "recipes.sl.chat_sft", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "data.messages_field" in out.stdout


def _convs(n):
    return [[{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": f"{w} {w} {w}"}]
            for w in ["apple", "pear", "plum", "fig", "kiwi", "lime"] * (n // 6)]


@pytest.mark.parametrize("kind", ["jsonl", "saved_dataset"])
def test_chat_sft_trains_from_local_sources(kind, tmp_path):
    convs = _convs(48)
    if kind == "jsonl":
        source = tmp_path / "train.jsonl"
        source.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs))
    else:
        source = tmp_path / "saved"
        datasets = pytest.importorskip("datasets")  # not on the GPU image
        datasets.Dataset.from_list([{"messages": c} for c in convs]).save_to_disk(str(source))
    log = tmp_path / "run"
    code = cookbook_main(["run", "sl/chat_sft", f"data.source={source}", "data.test_size=6", "batch_size=6",
                          "num_epochs=3", "learning_rate=3e-3", "lora_rank=8", "eval_every=3", f"log_path={log}",
                          "progress=False"])
    assert code == 0
    rows = [json.loads(line) for line in (log / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 21
    for row in rows:
        assert {"train/loss", "learning_rate", "tokens_per_s", "step_time_s"} <= row.keys()
    nll = [r["test/nll"] for r in rows if "test/nll" in r]
    assert len(nll) == 7 and nll[-1] < nll[0]
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
