"""Conversation datasets for supervised learning, and turning them into training data.

A dataset spec is one string:

- a built-in task (``cookbook.tasks``): ``addition`` (or ``addition:<digits>``), the synthetic task
  for the tiny model, integer addition as a chat (``"23+45"`` -> ``"68"``);
- any source of :func:`cookbook.rows.read_rows` (a ``.jsonl`` / ``.jsonl.gz`` / ``.json`` /
  ``.parquet`` file, a ``save_to_disk`` directory, ``hf:<name>[:<config>]``) whose rows hold
  ``{"messages": [...]}``.

Rows are read from ``messages_field`` (OpenAI-style chat messages), or built from
``prompt_field`` / ``response_field`` as one user turn and one assistant turn. A file that cannot
be read raises a :class:`cookbook.errors.UserError` naming the file and line (or row).

``streaming`` reads rows lazily (:func:`cookbook.rows.iter_rows`) and stops after ``limit`` of them,
so a file larger than memory never has to be read whole. A mixture (:func:`parse_mix`:
``source=weight,source=weight``) draws a given number of conversations from several sources in
proportion to their weights (:func:`load_mixture`): a source with too few is repeated (upsampled).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tinker import types

from cookbook.datums import next_token_datum
from cookbook.errors import ConfigError, DataError
from cookbook.rows import iter_rows, read_rows
from cookbook.seeds import shuffled
from cookbook.supervised.types import Conversation
from cookbook.tasks import task_from_spec
from renderers import Renderer, ToolSpec, TrainOnWhat, from_openai_messages

# The values of renderers.TrainOnWhat, as a type a config option can have (checked when parsed).
TrainOnWhatName = Literal["last_assistant_message", "all_assistant_messages", "all_messages", "customized"]


@dataclass(frozen=True)
class DatasetSpec:
    source: str
    split: str = "train"
    messages_field: str = "messages"
    prompt_field: str | None = None
    response_field: str | None = None
    system_prompt: str | None = None


def load_conversations(spec: DatasetSpec, *, n_synthetic: int = 20000, seed: int = 0, limit: int | None = None,
                       streaming: bool = False) -> list[Conversation]:
    """The conversations of a dataset spec (synthetic tasks generate ``n_synthetic`` of them), the first
    ``limit`` only when given; ``streaming`` reads rows lazily and stops there."""
    task = task_from_spec(spec.source)
    if task is not None:
        return task.conversations(max(n_synthetic, limit or 0), seed=seed)[:limit]
    if streaming:
        conversations = [_row_to_conversation(row, spec, where)
                         for row, where in itertools.islice(iter_rows(spec.source, spec.split), limit)]
    else:
        rows = read_rows(spec.source, spec.split)
        count = len(rows) if limit is None else min(limit, len(rows))
        conversations = [_row_to_conversation(rows[i], spec, rows.where(i)) for i in range(count)]
    if spec.system_prompt:
        conversations = [[{"role": "system", "content": spec.system_prompt}, *c] for c in conversations]
    return conversations


def parse_mix(mix: str) -> list[tuple[str, float]]:
    """``source=weight,source=weight,...`` -> (source, weight) pairs; weights > 0 (they need not sum to 1)."""
    out: list[tuple[str, float]] = []
    for entry in mix.split(","):
        source, sep, weight = (part.strip() for part in entry.rpartition("="))
        try:
            value = float(weight)
        except ValueError:
            value = float("nan")
        if not (sep and source) or not value > 0 or value == float("inf"):
            raise ConfigError(f"data.mix: {entry.strip()!r} is not source=weight with a weight > 0 "
                              "(e.g. data.mix=chat.jsonl=0.7,hf:org/name=0.3)")
        out.append((source, value))
    return out


def mixture_counts(weights: Sequence[float], total: int) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders; the counts sum to ``total``)."""
    exact = [total * w / sum(weights) for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def load_mixture(specs: Sequence[tuple[DatasetSpec, float]], total: int, *, seed: int = 0,
                 streaming: bool = False) -> list[Conversation]:
    """``total`` conversations drawn from the specs in proportion to their weights, shuffled with ``seed``.
    Each source gives its first rows (``streaming``: read lazily, never past what is needed); a source
    with fewer rows than its share is repeated."""
    if total < 1:
        raise ConfigError(f"a data mixture needs a number of examples >= 1, got {total}")
    mixed: list[Conversation] = []
    for (spec, _), count in zip(specs, mixture_counts([w for _, w in specs], total)):
        if count == 0:
            continue
        conversations = load_conversations(spec, seed=seed, limit=count, streaming=streaming)
        if not conversations:
            raise DataError(f"{spec.source}: no conversations to mix")
        mixed += list(itertools.islice(_cycle(conversations), count))
    random.Random(seed).shuffle(mixed)
    return mixed


def _cycle(items: Sequence[Conversation]) -> Iterator[Conversation]:
    while True:
        yield from items


def _row_to_conversation(row: dict[str, Any], spec: DatasetSpec, where: str) -> Conversation:
    if spec.prompt_field or spec.response_field:
        if not (spec.prompt_field and spec.response_field):
            raise ConfigError("data.prompt_field and data.response_field go together; set both or neither")
        try:
            return [{"role": "user", "content": str(row[spec.prompt_field])},
                    {"role": "assistant", "content": str(row[spec.response_field])}]
        except KeyError as exc:
            raise DataError(f"{where}: row has no field {exc}; fields: {sorted(row)}") from None
    if spec.messages_field not in row:
        raise DataError(f"{where}: row has no {spec.messages_field!r} field; fields: {sorted(row)} "
                        "(set data.messages_field, or data.prompt_field and data.response_field)")
    try:
        return from_openai_messages(row[spec.messages_field])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{where}: {spec.messages_field!r} is not a list of chat messages ({exc!r})") from None


def split_train_test(items: Sequence, test_size: int | float, seed: int) -> tuple[list, list]:
    """Shuffle with ``seed`` and hold out ``test_size`` items (a count, or a fraction if < 1)."""
    n_test = int(round(len(items) * test_size)) if isinstance(test_size, float) and test_size < 1 else int(test_size)
    if not 0 <= n_test < len(items):
        raise ConfigError(f"test_size {test_size} leaves no training data out of {len(items)} examples")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    test = [items[i] for i in order[:n_test]]
    train = [items[i] for i in order[n_test:]]
    return train, test


def conversation_to_datum(conversation: Conversation, renderer: Renderer, train_on_what: TrainOnWhat | str,
                          max_length: int | None = None, *,
                          tools: Sequence[ToolSpec] | None = None) -> types.Datum | None:
    """Next-token datum of a rendered conversation (``tools`` declared in its prompt); None when no
    trained token survives truncation."""
    model_input, weights = renderer.build_supervised_example(conversation, train_on_what, tools=tools)
    return next_token_datum(model_input.to_ints(), weights, max_length)


def conversations_to_data(conversations: Sequence[Conversation], renderer: Renderer,
                          train_on_what: TrainOnWhat | str, max_length: int | None = None, *,
                          tools: Sequence[ToolSpec] | None = None) -> list[types.Datum]:
    """Datums of the conversations that keep at least one trained token (see conversation_to_datum)."""
    data = (conversation_to_datum(c, renderer, train_on_what, max_length, tools=tools) for c in conversations)
    return [d for d in data if d is not None]


def batch_indices(lengths: Sequence[int], *, batch_size: int | None, max_tokens: int | None,
                  seed: int, epoch: int) -> list[list[int]]:
    """One epoch of batches, shuffled with (seed, epoch): by example count or by a token budget."""
    if (batch_size is None) == (max_tokens is None):
        raise ConfigError("set exactly one of batch_size and max_tokens_per_batch (the other to None)")
    order = shuffled(len(lengths), seed, epoch)
    if batch_size is not None:
        return [order[i: i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
    assert max_tokens is not None
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        if current and used + lengths[i] > max_tokens:
            batches.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        batches.append(current)
    return batches


class EpochBatches:
    """The batch of every step of a multi-epoch run, each epoch shuffled with (seed, epoch) by
    :func:`batch_indices`: the steps run through epoch 0's batches, then epoch 1's, and so on.

    With a token budget an epoch's batch count depends on its shuffle, so epochs may differ by a
    few batches: steps are counted through each epoch's own batches, never epoch 0's count."""

    def __init__(self, lengths: Sequence[int], *, batch_size: int | None, max_tokens: int | None, seed: int) -> None:
        self._make = lambda epoch: batch_indices(lengths, batch_size=batch_size, max_tokens=max_tokens, seed=seed,
                                                 epoch=epoch)
        self._epoch, self._batches = 0, self._make(0)
        self._counts = [len(self._batches)]  # batches of each epoch seen so far
        self.per_epoch = self._counts[0]  # batches in the first epoch

    def _count(self, epoch: int) -> int:
        while len(self._counts) <= epoch:
            self._counts.append(len(self._make(len(self._counts))))
        return self._counts[epoch]

    def steps(self, num_epochs: int) -> int:
        """Steps in ``num_epochs`` passes over the data."""
        return sum(self._count(e) for e in range(num_epochs))

    def __getitem__(self, step: int) -> list[int]:
        epoch = 0
        while step >= self._count(epoch):
            step -= self._count(epoch)
            epoch += 1
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._make(epoch)
        return self._batches[step]
