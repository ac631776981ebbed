"""Comparison sources: the HH-RLHF transcript parser, message-list rows, JSONL files, synthetic addition."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from cookbook.errors import DataError
from cookbook.preference.data import (
    addition_comparisons,
    carry_comparisons,
    comparison_to_pair,
    load_comparisons,
    parse_hh_transcript,
    row_to_comparison,
)
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer

SHARED = Path(__file__).resolve().parents[3] / "shared"
HH_TEST = SHARED / "data" / "hh_rlhf" / "harmless-base-test.jsonl.gz"


def _alternates(messages):
    return all(a["role"] != b["role"] for a, b in zip(messages, messages[1:]))


@pytest.mark.skipif(not HH_TEST.exists(), reason="needs ../shared/data/hh_rlhf")
def test_hh_rlhf_file_parses_every_row():
    with gzip.open(HH_TEST, "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    comparisons = load_comparisons(str(HH_TEST))
    assert len(comparisons) == len(rows) > 2000
    for row, c in zip(rows, comparisons):
        chosen, rejected = parse_hh_transcript(row["chosen"]), parse_hh_transcript(row["rejected"])
        assert c.prompt + c.chosen == chosen and c.prompt + c.rejected == rejected
        assert c.prompt[0]["role"] == "user" and c.prompt[-1]["role"] == "user"
        assert c.chosen[0]["role"] == c.rejected[0]["role"] == "assistant"
        assert _alternates(c.prompt + c.chosen) and _alternates(c.prompt + c.rejected)
        assert len(c.chosen) == len(c.rejected) == 1 and c.chosen[0] != c.rejected[0]  # the whole shared prefix


def test_hh_transcript_parser():
    text = "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: 2+2?\n\nAssistant: 4"
    assert parse_hh_transcript(text) == [{"role": "user", "content": "hi there"},
                                         {"role": "assistant", "content": "hello"},
                                         {"role": "user", "content": "2+2?"},
                                         {"role": "assistant", "content": "4"}]
    c = row_to_comparison({"chosen": text, "rejected": text[:-1] + "5"})
    assert [m["content"] for m in c.prompt] == ["hi there", "hello", "2+2?"]
    assert c.chosen == [{"role": "assistant", "content": "4"}] and c.rejected[0]["content"] == "5"


def test_message_list_rows():
    prompt = [{"role": "user", "content": "q"}]
    ultra = {"prompt": "q", "chosen": [*prompt, {"role": "assistant", "content": "good"}],
             "rejected": [*prompt, {"role": "assistant", "content": "bad"}]}
    c = row_to_comparison(ultra)
    assert c.prompt == prompt and c.chosen[0]["content"] == "good" and c.rejected[0]["content"] == "bad"
    c = row_to_comparison({"prompt": prompt, "chosen": "good", "rejected": [{"role": "assistant", "content": "bad"}]})
    assert c.prompt == prompt and c.chosen == [{"role": "assistant", "content": "good"}]
    c = row_to_comparison({"chosen": ultra["chosen"], "rejected": ultra["rejected"]})  # no prompt: shared prefix
    assert c.prompt == prompt and c.rejected[0]["content"] == "bad"
    with pytest.raises(DataError, match="row 3"):
        row_to_comparison({"chosen": "x"}, "row 3")


def test_jsonl_file_and_errors(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n\n{oops\n")
    with pytest.raises(DataError, match=r"prefs.jsonl:3: not valid JSON"):
        load_comparisons(str(path))
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    assert load_comparisons(str(path))[0].chosen == [{"role": "assistant", "content": "a"}]


def test_synthetic_addition_and_pairs():
    comparisons = addition_comparisons(50, seed=0)
    assert len(comparisons) == 50
    for c in comparisons:
        a, b = map(int, c.prompt[0]["content"].split("+"))
        assert c.chosen[0]["content"] == str(a + b) != c.rejected[0]["content"]
        assert int(c.rejected[0]["content"]) >= 0
    assert load_comparisons("addition", n_synthetic=5) == addition_comparisons(5)
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    chosen, rejected = comparison_to_pair(comparisons[0], renderer)
    tok = get_tokenizer("tiny")
    for datum, completion in ((chosen, comparisons[0].chosen), (rejected, comparisons[0].rejected)):
        targets = datum.loss_fn_inputs["target_tokens"].to_numpy()
        weights = datum.loss_fn_inputs["weights"].to_numpy()
        trained = tok.decode([int(t) for t, w in zip(targets, weights) if w > 0])
        assert trained.startswith(completion[0]["content"])  # the completion (and its end-of-turn token) only
        assert datum.model_input.length == len(targets)


def test_carry_comparisons_are_balanced_by_length():
    comparisons = carry_comparisons(101, seed=4, exclude={"27+82"})
    assert len(comparisons) == 101
    longer_right = 0
    for c in comparisons:
        a, b = map(int, c.prompt[0]["content"].split("+"))
        right, wrong = c.chosen[0]["content"], c.rejected[0]["content"]
        assert right == str(a + b) and abs(int(wrong) - (a + b)) == 100 and int(wrong) >= 0
        assert c.prompt[0]["content"] != "27+82"
        longer_right += len(right) > len(wrong)
    assert longer_right == 51  # half each way (the odd one carries): length alone scores 50%
    assert carry_comparisons(101, seed=4) != carry_comparisons(101, seed=5)
