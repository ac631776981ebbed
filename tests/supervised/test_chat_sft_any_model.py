"""Any chat model trains (issue 23, acceptance 3): `cookbook run sl/chat_sft base_model=<dir>` on a
model the renderer table does not know, whose tokenizer carries a community chat template, picks
the chat-template renderer (`renderer=auto`), trains, and its sampled replies parse. A model with no
template stops with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers
from tinker import types

import cookbook
from cookbook.tiny import build_tiny_tokenizer
from recipes.__main__ import main as cookbook_main
from renderers import get_renderer

SHARED = Path(__file__).resolve().parents[3] / "shared" / "chat_templates" / "community"
WORDS = ["apple", "pear", "plum", "fig", "kiwi", "lime", "grape", "melon"]


def save_tiny_random_model(directory: Path, chat_template: str | None) -> Path:
    """A 2-layer random Qwen3-architecture model and a byte-level ChatML tokenizer, in HF format."""
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(directory)
    torch.manual_seed(0)
    config = transformers.Qwen3Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                      max_position_embeddings=512, tie_word_embeddings=False)
    transformers.Qwen3ForCausalLM(config).save_pretrained(directory)
    return directory


def test_chat_sft_trains_an_unknown_model_with_its_own_template_and_replies_parse(tmp_path):
    template_file = SHARED / "chatml.jinja"
    if not template_file.exists():
        pytest.skip(f"community chat templates not found at {SHARED}")
    model = save_tiny_random_model(tmp_path / "my-chat-model", template_file.read_text())
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Say {w}."},
                                                      {"role": "assistant", "content": "OK."}]}) + "\n"
                            for w in WORDS * 3))
    log = tmp_path / "run"
    code = cookbook_main(["run", "sl/chat_sft", f"base_model={model}", f"data.source={data}", "data.test_size=0",
                          "batch_size=8", "max_steps=10", "num_epochs=10", "learning_rate=1e-2", "lora_rank=8",
                          f"log_path={log}", "progress=False"])
    assert code == 0
    metrics = [json.loads(line) for line in (log / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 10 and metrics[-1]["train/loss"] < metrics[0]["train/loss"]

    # The recipe's default (renderer=auto) for this unknown model is the template's renderer.
    renderer = get_renderer("auto", transformers.AutoTokenizer.from_pretrained(model))
    assert renderer.name == "chat_template"
    final = [json.loads(line) for line in (log / "checkpoints.jsonl").read_text().splitlines()][-1]
    sampler = cookbook.service_client().create_sampling_client(model_path=final["sampler_path"])
    sampler = sampler.result() if hasattr(sampler, "result") else sampler
    params = types.SamplingParams(max_tokens=24, temperature=0.0, stop=renderer.get_stop_sequences())
    for word in ("banana", "cherry", "apple"):
        prompt = renderer.build_generation_prompt([{"role": "user", "content": f"Say {word}."}])
        tokens = sampler.sample(prompt, num_samples=1, sampling_params=params).result().sequences[0].tokens
        message, ok = renderer.parse_response(tokens)
        assert ok, renderer.decode(tokens)
        assert message == {"role": "assistant", "content": "OK."}


def test_chat_sft_on_a_model_without_a_template_is_one_line(tmp_path, capsys):
    model = save_tiny_random_model(tmp_path / "base-model", None)
    data = tmp_path / "chats.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}
    data.write_text(json.dumps(row))
    assert cookbook_main(["run", "sl/chat_sft", f"base_model={model}", f"data.source={data}",
                          f"log_path={tmp_path / 'run'}"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: renderer: ")
    assert "no chat template" in lines[0] and str(model) in lines[0]
