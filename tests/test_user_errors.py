"""User errors read as errors: one line naming the file and line / option / model id, exit 2, no
traceback unless asked for (``--debug``, ``COOKBOOK_DEBUG=1``); bugs keep their traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cookbook.errors import DataError, ModelLoadError, UserError
from cookbook.recipe_cli import report_user_errors
from recipes.__main__ import main as cookbook_main

REPO = Path(__file__).resolve().parents[1]
ROW = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    monkeypatch.delenv("COOKBOOK_DEBUG", raising=False)


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_jsonl_line_names_the_file_and_line(tmp_path, capsys):
    data = tmp_path / "chats.jsonl"
    data.write_text(ROW + "\n{not json\n" + ROW + "\n")
    assert cookbook_main(["run", "sl/chat_sft", f"data.source={data}", f"log_path={tmp_path / 'run'}"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"{data}:2: not valid JSON" in line and "each line must be one JSON object" in line


def test_missing_data_file_names_the_file(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert cookbook_main(["run", "sl/chat_sft", f"data.source={missing}", f"log_path={tmp_path / 'run'}"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"{missing}: no such file or directory" in line and ".jsonl" in line


def test_row_without_messages_names_the_line_and_the_option(tmp_path, capsys):
    data = tmp_path / "qa.jsonl"
    data.write_text("\n" + json.dumps({"q": "x", "a": "y"}) + "\n")
    assert cookbook_main(["run", "sl/chat_sft", f"data.source={data}", f"log_path={tmp_path / 'run'}"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"{data}:2: row has no 'messages' field" in line and "data.prompt_field" in line


def test_bad_option_is_one_line_with_a_suggestion(capsys):
    assert cookbook_main(["run", "sl/chat_sft", "learning_rat=0.1"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "unknown option 'learning_rat'" in line and "did you mean 'learning_rate'" in line
    assert cookbook_main(["quickstart", "batch_size=many"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "'many'" in line and "batch_size" in line


@pytest.mark.parametrize("args,allowed", [
    (["run", "rl/addition", "loss_fn=pop"], ["importance_sampling", "ppo", "cispo", "dro"]),
    (["run", "rl/addition", "lr_schedule=cosin"], ["constant", "linear", "cosine"]),
    (["run", "rl/addition", "renderer=qwen"], ["qwen3", "llama3", "tiny", "role_colon"]),
    (["run", "sl/chat_sft", "data.train_on_what=al"], ["last_assistant_message", "all_assistant_messages",
                                                        "all_messages", "customized"]),
    (["run", "dpo/chat_dpo", "backend=tinkr"], ["local", "tinker"]),
])
def test_a_bad_option_value_stops_at_parse_time_naming_the_allowed_values(args, allowed, monkeypatch, capsys):
    import importlib

    module = importlib.import_module("recipes." + args[1].replace("/", "."))

    def main(config):
        raise AssertionError("the recipe ran (and would have loaded a model) with a bad option")
    monkeypatch.setattr(module, "main", main)
    assert cookbook_main(args) == 2
    line = one_line_error(capsys.readouterr().err)
    bad = args[2].split("=")[1]
    assert repr(bad) in line and all(value in line for value in allowed), line


@pytest.mark.parametrize("args,expected", [
    (["run", "sl/chat_sft", "batch_size=0"], "batch_size must be >= 1, got 0"),
    (["run", "sl/chat_sft", "batch_size=-4"], "batch_size must be >= 1, got -4"),
    (["run", "rl/addition", "max_steps=-1"], "max_steps must be >= 1, got -1"),
    (["run", "dpo/addition", "beta=-1"], "beta must be > 0, got -1.0"),
    (["run", "rl/addition", "learning_rate=-0.1"], "learning_rate must be >= 0, got -0.1"),
    (["run", "rl/addition", "digit_credit=1"], "digit_credit must be in [0, 1) (only the exact sum scores 1), got 1.0"),
    (["run", "sl/chat_sft", "pack_length=-1"], "pack_length must be >= 0, got -1"),
    (["run", "rl/addition", "overlong_buffer=2"], "overlong_buffer must be in [0, 1], got 2.0"),
    (["run", "rl/addition", "env_step_timeout=0"], "env_step_timeout must be > 0, got 0.0"),
    (["run", "distill/off_policy", "topk=0"], "topk must be >= 1, got 0"),
    (["run", "dpo/addition", "simpo_gamma=nan"], "simpo_gamma must be a number, got nan"),
    # options of a nested section carry its name
    (["run", "sl/chat_sft", "data.max_length=0"], "data.max_length must be >= 1, got 0"),
    (["run", "sl/chat_sft", "evals.n=0"], "evals.n must be >= 1, got 0"),
])
def test_out_of_range_numbers_stop_before_the_run_directory_is_written(args, expected, tmp_path, monkeypatch,
                                                                       capsys):
    import importlib

    module = importlib.import_module("recipes." + args[1].replace("/", "."))
    monkeypatch.setattr(module, "main", lambda config: pytest.fail("the recipe ran with a bad option"))
    run = tmp_path / "run"
    assert cookbook_main([*args, f"log_path={run}"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert expected in line and "X_" not in line  # chz's storage name for a field never shows
    assert not run.exists()  # so the corrected command on the same log_path is not "a different configuration"


def test_log_path_that_cannot_be_a_directory_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for log_path in (a_file, a_file / "run"):
        assert cookbook_main(["run", "rl/addition", f"log_path={log_path}"]) == 2
        line = one_line_error(capsys.readouterr().err)
        assert "log_path" in line and str(a_file) in line
    assert a_file.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_log_path_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert cookbook_main(["run", "rl/addition", f"log_path={locked / 'run'}"]) == 2
        assert "log_path" in one_line_error(capsys.readouterr().err)
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("name,payload", [("chats.jsonl", b"\x00\xff\xfe binary \x89PNG"),
                                          ("chats.jsonl.gz", b"not gzip at all"),
                                          ("chats.parquet", b"PAR1 not parquet")])
def test_binary_or_damaged_data_file_is_one_line(name, payload, tmp_path, capsys):
    data = tmp_path / name
    data.write_bytes(payload)
    assert cookbook_main(["run", "sl/chat_sft", f"data.source={data}", f"log_path={tmp_path / 'run'}"]) == 2
    assert str(data) in one_line_error(capsys.readouterr().err)


def _run_cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """``cookbook ...`` in a subprocess with the hub offline (no test may wait on the network)."""
    base = {k: v for k, v in os.environ.items() if k != "COOKBOOK_DEBUG"}
    return subprocess.run([sys.executable, "-m", "recipes", *args], cwd=REPO,
                          env={**base, "HF_HUB_OFFLINE": "1", **env}, capture_output=True, text=True, timeout=300)


def test_hub_model_without_network_names_the_model(tmp_path):
    model = "cookbook-tests/no-such-model"
    out = _run_cli(["run", "sl/chat_sft", f"base_model={model}", f"log_path={tmp_path / 'run'}"])
    assert out.returncode == 2, out.stderr
    line = one_line_error(out.stderr)
    assert f"cannot load model {model!r}" in line and "base_model takes" in line


def test_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "nope.jsonl")
    out = _run_cli(["run", "sl/chat_sft", f"data.source={missing}", "--debug"])
    assert out.returncode == 1 and "Traceback" in out.stderr and "MissingFileError" in out.stderr
    out = _run_cli(["--debug", "run", "sl/chat_sft", f"data.source={missing}"])
    assert out.returncode == 1 and "Traceback" in out.stderr
    out = _run_cli(["run", "sl/chat_sft", f"data.source={missing}"], COOKBOOK_DEBUG="1")
    assert out.returncode == 1 and "Traceback" in out.stderr


def test_local_backend_reports_a_model_it_cannot_load(monkeypatch):
    import transformers

    import cookbook

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nSecond line.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    with pytest.raises(ModelLoadError, match="cannot load model 'org/absent': We couldn't connect") as info:
        cookbook.service_client().create_lora_training_client(base_model="org/absent", rank=4)
    assert isinstance(info.value, UserError) and "Second line" not in str(info.value)


def test_bugs_keep_their_traceback_and_user_errors_become_status_2(capsys):
    def bug() -> int:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        report_user_errors(bug)

    def user() -> int:
        raise DataError("data.jsonl:3: not valid JSON\n(more)")

    assert report_user_errors(user) == 2
    assert one_line_error(capsys.readouterr().err) == "error: data.jsonl:3: not valid JSON (more)"
    with pytest.raises(DataError):
        report_user_errors(user, debug=True)
