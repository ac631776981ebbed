import json
import random

import pytest

from cookbook.supervised.data import (
    DatasetSpec,
    EpochBatches,
    batch_indices,
    conversation_to_datum,
    load_conversations,
    split_train_test,
)
from cookbook.tasks import AdditionTask
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer

CONVS = [[{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"hello {i}"}] for i in range(10)]


def test_jsonl_parquet_and_saved_dataset_sources(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps({"messages": c}) + "\n" for c in CONVS))
    assert load_conversations(DatasetSpec(str(jsonl))) == CONVS
    datasets = pytest.importorskip("datasets")  # not on the GPU image; the other tests here do not need it
    ds = datasets.Dataset.from_list([{"messages": c} for c in CONVS])
    ds.to_parquet(str(tmp_path / "d.parquet"))
    assert load_conversations(DatasetSpec(str(tmp_path / "d.parquet"))) == CONVS
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "saved"))
    assert load_conversations(DatasetSpec(str(tmp_path / "saved"))) == CONVS
    with pytest.raises(ValueError, match="splits"):
        load_conversations(DatasetSpec(str(tmp_path / "saved"), split="test"))


def test_prompt_response_field_mapping_and_system_prompt(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"q": "2+2?", "a": "4"}) + "\n")
    conv = load_conversations(DatasetSpec(str(path), prompt_field="q", response_field="a", system_prompt="Be brief."))
    assert conv == [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                     {"role": "assistant", "content": "4"}]]
    with pytest.raises(ValueError, match="no 'messages' field"):
        load_conversations(DatasetSpec(str(path)))
    with pytest.raises(FileNotFoundError):
        load_conversations(DatasetSpec(str(tmp_path / "missing.jsonl")))


def test_addition_task_and_split():
    convs = AdditionTask().conversations(50, seed=3)
    assert all(int(c[1]["content"]) == sum(map(int, c[0]["content"].split("+"))) for c in convs)
    assert AdditionTask().conversations(50, seed=3) == convs
    train, test = split_train_test(convs, 10, seed=0)
    assert len(train) == 40 and len(test) == 10
    assert sorted(map(str, train + test)) == sorted(map(str, convs))


def test_conversation_to_datum_trains_only_on_the_answer():
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    datum = conversation_to_datum(AdditionTask().conversations(1)[0], renderer, "last_assistant_message")
    targets = datum.loss_fn_inputs["target_tokens"].tolist()
    weights = datum.loss_fn_inputs["weights"].tolist()
    trained = renderer.decode([t for t, w in zip(targets, weights) if w])
    assert trained.endswith("<|im_end|>") and trained[:-len("<|im_end|>")].isdigit()
    conversation = AdditionTask().conversations(1)[0]
    assert conversation_to_datum(conversation, renderer, "last_assistant_message", max_length=5) is None


def test_batches_by_count_and_by_token_budget_are_seeded():
    lengths = [5, 9, 3, 7, 8, 2, 6, 4]
    by_count = batch_indices(lengths, batch_size=3, max_tokens=None, seed=1, epoch=0)
    assert [len(b) for b in by_count] == [3, 3]
    assert by_count == batch_indices(lengths, batch_size=3, max_tokens=None, seed=1, epoch=0)
    assert by_count != batch_indices(lengths, batch_size=3, max_tokens=None, seed=1, epoch=1)
    by_tokens = batch_indices(lengths, batch_size=None, max_tokens=12, seed=1, epoch=0)
    assert sorted(i for b in by_tokens for i in b) == list(range(8))
    assert all(sum(lengths[i] for i in b) <= 12 or len(b) == 1 for b in by_tokens)


def test_token_budget_epochs_of_different_batch_counts_are_each_covered_once():
    rng = random.Random(0)
    lengths = [rng.randint(1, 50) for _ in range(40)]
    batches = EpochBatches(lengths, batch_size=None, max_tokens=60, seed=0)
    counts = [batches.steps(e + 1) - batches.steps(e) for e in range(3)]
    assert len(set(counts)) > 1  # the shuffles give epochs of different lengths (23, 25, 24 batches)
    step = 0
    for count in counts:
        epoch = [batches[step + i] for i in range(count)]
        step += count
        assert sorted(i for batch in epoch for i in batch) == list(range(len(lengths)))  # each example once
        assert all(sum(lengths[i] for i in b) <= 60 or len(b) == 1 for b in epoch)
    assert step == batches.steps(3)
    assert batches[5] == EpochBatches(lengths, batch_size=None, max_tokens=60, seed=0)[5]  # resume: same batches


def test_the_train_on_what_option_takes_exactly_the_renderers_values():
    from typing import get_args

    from cookbook.supervised.data import TrainOnWhatName
    from renderers import TrainOnWhat

    assert set(get_args(TrainOnWhatName)) == {member.value for member in TrainOnWhat}
