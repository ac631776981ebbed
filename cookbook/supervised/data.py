"""Conversation datasets for supervised learning, and turning them into training data.

A dataset spec is one string:

- ``addition`` (or ``addition:<digits>``): the built-in synthetic task for the tiny model, integer
  addition as a chat (``"23+45"`` -> ``"68"``);
- a ``.jsonl`` / ``.json`` / ``.parquet`` file whose rows hold ``{"messages": [...]}``;
- a directory written by ``datasets.Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``;
- ``hf:<name>`` (optionally ``hf:<name>:<config>``): a Hugging Face hub dataset, loaded by name.

Rows are read from ``messages_field`` (OpenAI-style chat messages), or built from
``prompt_field`` / ``response_field`` as one user turn and one assistant turn.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tinker import types

from renderers import Message, Renderer, TrainOnWhat, from_openai_messages

Conversation = list[Message]


@dataclass(frozen=True)
class DatasetSpec:
    source: str
    split: str = "train"
    messages_field: str = "messages"
    prompt_field: str | None = None
    response_field: str | None = None
    system_prompt: str | None = None


def load_conversations(spec: DatasetSpec, *, n_synthetic: int = 20000, seed: int = 0) -> list[Conversation]:
    """All conversations of a dataset spec (synthetic tasks generate ``n_synthetic`` of them)."""
    source = spec.source
    if source == "addition" or source.startswith("addition:"):
        digits = int(source.split(":", 1)[1]) if ":" in source else 2
        return addition_conversations(n_synthetic, digits=digits, seed=seed)
    rows = _load_rows(spec)
    conversations = [_row_to_conversation(row, spec, i) for i, row in enumerate(rows)]
    if spec.system_prompt:
        conversations = [[{"role": "system", "content": spec.system_prompt}, *c] for c in conversations]
    return conversations


def _load_rows(spec: DatasetSpec) -> Iterable[dict]:
    source = spec.source
    if source.startswith("hf:"):
        import datasets

        name, _, config = source[3:].partition(":")
        return datasets.load_dataset(name, config or None, split=spec.split)
    path = Path(source).expanduser()
    if path.is_dir():
        import datasets

        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if spec.split not in loaded:
                raise ValueError(f"{path} has splits {sorted(loaded)}, not {spec.split!r}")
            loaded = loaded[spec.split]
        return loaded
    if not path.exists():
        raise FileNotFoundError(f"dataset {source!r} not found: not a file, a saved dataset directory, "
                                "'addition', or 'hf:<name>'")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    if suffix == ".json":
        data = json.loads(path.read_text())
        return data if isinstance(data, list) else data[spec.split]
    if suffix == ".parquet":
        import datasets

        return datasets.Dataset.from_parquet(str(path))
    raise ValueError(f"unsupported dataset file {path.name}: use .jsonl, .json or .parquet")


def _row_to_conversation(row: dict, spec: DatasetSpec, index: int) -> Conversation:
    if spec.prompt_field or spec.response_field:
        if not (spec.prompt_field and spec.response_field):
            raise ValueError("prompt_field and response_field go together")
        try:
            return [{"role": "user", "content": str(row[spec.prompt_field])},
                    {"role": "assistant", "content": str(row[spec.response_field])}]
        except KeyError as exc:
            raise ValueError(f"row {index} has no field {exc}; fields: {sorted(row)}") from None
    if spec.messages_field not in row:
        raise ValueError(f"row {index} has no {spec.messages_field!r} field; fields: {sorted(row)} "
                         "(set messages_field, or prompt_field and response_field)")
    return from_openai_messages(row[spec.messages_field])


def addition_conversations(n: int, *, digits: int = 2, seed: int = 0,
                           exclude: set[tuple[int, int]] | None = None) -> list[Conversation]:
    """``n`` random ``a+b`` problems with ``digits``-digit operands as user/assistant turns."""
    rng = random.Random(seed)
    low, high = 10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1
    out: list[Conversation] = []
    while len(out) < n:
        a, b = rng.randint(low, high), rng.randint(low, high)
        if exclude and (a, b) in exclude:
            continue
        out.append(addition_problem(a, b))
    return out


def addition_problem(a: int, b: int) -> Conversation:
    return [{"role": "user", "content": f"{a}+{b}"}, {"role": "assistant", "content": str(a + b)}]


def split_train_test(items: Sequence, test_size: int | float, seed: int) -> tuple[list, list]:
    """Shuffle with ``seed`` and hold out ``test_size`` items (a count, or a fraction if < 1)."""
    n_test = int(round(len(items) * test_size)) if isinstance(test_size, float) and test_size < 1 else int(test_size)
    if not 0 <= n_test < len(items):
        raise ValueError(f"test_size {test_size} leaves no training data out of {len(items)} examples")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    test = [items[i] for i in order[:n_test]]
    train = [items[i] for i in order[n_test:]]
    return train, test


def conversation_to_datum(conversation: Conversation, renderer: Renderer, train_on_what: TrainOnWhat | str,
                          max_length: int | None = None) -> types.Datum | None:
    """Next-token datum of a rendered conversation; None when no trained token survives truncation."""
    model_input, weights = renderer.build_supervised_example(conversation, train_on_what)
    tokens = model_input.to_ints()
    if max_length is not None:
        tokens, weights = tokens[: max_length + 1], weights[: max_length + 1]
    if len(tokens) < 2 or not any(weights[1:]):
        return None
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": [float(w) for w in weights[1:]]},
    )


def conversations_to_data(conversations: Sequence[Conversation], renderer: Renderer,
                          train_on_what: TrainOnWhat | str, max_length: int | None = None) -> list[types.Datum]:
    """Datums of the conversations that keep at least one trained token (see conversation_to_datum)."""
    data = (conversation_to_datum(c, renderer, train_on_what, max_length) for c in conversations)
    return [d for d in data if d is not None]


def batch_indices(lengths: Sequence[int], *, batch_size: int | None, max_tokens: int | None,
                  seed: int, epoch: int) -> list[list[int]]:
    """One epoch of batches, shuffled with (seed, epoch): by example count or by a token budget."""
    if (batch_size is None) == (max_tokens is None):
        raise ValueError("give exactly one of batch_size and max_tokens")
    order = list(range(len(lengths)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    if batch_size is not None:
        return [order[i: i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    batches, current, used = [], [], 0
    for i in order:
        if current and used + lengths[i] > max_tokens:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        batches.append(current)
    return batches
