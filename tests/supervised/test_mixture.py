"""Dataset mixtures: counts in proportion to the weights, upsampling of small sources, streaming, the
``data.mix`` option's errors, and the chat_sft recipe reading a mixture."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cookbook.errors import ConfigError
from cookbook.supervised.data import DatasetSpec, load_mixture, mixture_counts, parse_mix


def _source(path, name: str, n: int) -> str:
    rows = [{"messages": [{"role": "user", "content": f"{name} {i}"}, {"role": "assistant", "content": "ok"}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_counts_follow_the_weights_and_sum_to_the_total():
    assert mixture_counts([0.7, 0.3], 10) == [7, 3]
    assert sorted(mixture_counts([1, 1, 1], 10)) == [3, 3, 4]
    assert sum(mixture_counts([0.2, 0.5, 0.31], 997)) == 997
    assert mixture_counts([3, 1], 8) == [6, 2]


@pytest.mark.parametrize("streaming", [False, True])
def test_a_mixture_draws_by_weight_and_repeats_a_small_source(tmp_path, streaming):
    big, small = _source(tmp_path / "big.jsonl", "big", 100), _source(tmp_path / "small.jsonl", "small", 3)
    mixed = load_mixture([(DatasetSpec(big), 3.0), (DatasetSpec(small), 1.0)], 40, seed=1, streaming=streaming)
    names = Counter(c[0]["content"].split()[0] for c in mixed)
    assert names == {"big": 30, "small": 10}
    assert Counter(c[0]["content"] for c in mixed if c[0]["content"].startswith("small")) == {
        "small 0": 4, "small 1": 3, "small 2": 3}
    assert {c[0]["content"] for c in mixed if c[0]["content"].startswith("big")} == {f"big {i}" for i in range(30)}
    assert [c[0]["content"] for c in mixed][:10] != [c[0]["content"] for c in mixed if "big" in c[0]["content"]][:10]
    assert load_mixture([(DatasetSpec(big), 3.0), (DatasetSpec(small), 1.0)], 40, seed=1) == mixed  # seeded


def test_mixing_a_task_and_a_file(tmp_path):
    chat = _source(tmp_path / "chat.jsonl", "chat", 10)
    mixed = load_mixture([(DatasetSpec("addition"), 1.0), (DatasetSpec(chat), 1.0)], 20)
    assert sum(c[0]["content"].startswith("chat") for c in mixed) == 10


@pytest.mark.parametrize("bad", ["a.jsonl", "a.jsonl=0", "a.jsonl=x", "=1", "a.jsonl=-1", "a.jsonl=inf"])
def test_bad_mix_entries_are_config_errors(bad):
    with pytest.raises(ConfigError, match="data.mix"):
        parse_mix(bad)


def test_mix_keeps_colons_in_sources():
    assert parse_mix("hf:org/name:config=0.25, b.jsonl=2") == [("hf:org/name:config", 0.25), ("b.jsonl", 2.0)]


def test_chat_sft_reads_a_mixture(tmp_path):
    from recipes.sl import chat_sft

    a, b = _source(tmp_path / "a.jsonl", "aa", 50), _source(tmp_path / "b.jsonl", "bb", 50)
    config = chat_sft.Config(base_model="tiny", renderer="tiny", data=chat_sft.DataConfig(
        mix=f"{a}=0.75,{b}=0.25", max_examples=20, test_size=0.0, streaming=True), log_path=str(tmp_path / "run"))
    train_data, test_data, renderer = chat_sft.build_data(config)
    texts = [renderer.tokenizer.decode(d.model_input.to_ints()) for d in train_data]
    assert len(texts) == 20 and sum("aa " in t for t in texts) == 15 and not test_data
    with pytest.raises(ConfigError, match="max_examples"):
        chat_sft.build_data(chat_sft.Config(data=chat_sft.DataConfig(mix=f"{a}=1"), log_path=str(tmp_path / "r2")))
