"""Comparison sources, and comparison -> pair of Datums.

A comparison source is one string:

- ``addition`` (or ``addition:<digits>``): synthetic comparisons for the tiny model, ``a+b`` with
  the correct sum chosen over a wrong one (:func:`addition_comparisons`);
- any source of :func:`cookbook.rows.read_rows`: a ``.jsonl`` / ``.jsonl.gz`` / ``.json`` /
  ``.parquet`` file, a ``save_to_disk`` directory, or ``hf:<name>[:<config>]`` (``hf:Anthropic/hh-rlhf``,
  ``hf:HuggingFaceH4/ultrafeedback_binarized`` with ``split=train_prefs``).

Every row is read by :func:`row_to_comparison`, in either format:

- HH-RLHF transcripts: ``chosen`` and ``rejected`` are strings of ``\\n\\nHuman: ...\\n\\nAssistant: ...``
  turns; the turns the two share are the prompt, the rest of each is its completion;
- message lists: ``chosen`` and ``rejected`` are lists of chat messages (or strings: one assistant
  message), with an optional ``prompt`` (a string: one user message, or a list of messages). When
  ``chosen`` repeats the prompt (UltraFeedback-style full conversations), the shared prefix is the prompt.

A row that cannot be read raises a :class:`cookbook.errors.DataError` naming the file and line (or row).

KTO's unpaired data (:class:`cookbook.preference.types.LabeledCompletion`): :func:`unpaired` makes it from
comparisons (no prompt keeps both its completions), and :func:`labeled_to_items` renders it into
:class:`KTOItem` examples, each with the mismatched datum that KTO's KL estimate needs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple, cast

from tinker import types

from cookbook.datums import next_token_datum
from cookbook.errors import ConfigError, DataError
from cookbook.preference.types import Comparison, LabeledCompletion
from cookbook.rows import read_rows
from cookbook.tasks import AdditionTask, Problem, task_from_spec
from renderers import Message, Renderer, from_openai_messages, text_content

_HH_TURN = re.compile(r"\n\n(Human|Assistant):[ \t]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_hh_transcript(text: str) -> list[Message]:
    """``"\\n\\nHuman: hi\\n\\nAssistant: hello"`` -> user and assistant messages (text before the
    first turn marker is dropped; consecutive turns of one role are merged so roles alternate)."""
    parts = _HH_TURN.split(text)
    messages: list[Message] = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        role = _HH_ROLES[speaker]
        if messages and messages[-1]["role"] == role:
            messages[-1] = {"role": role, "content": text_content(messages[-1]) + "\n\n" + content}
        else:
            messages.append({"role": role, "content": content})
    return messages


def split_shared_prefix(chosen: Sequence[Message], rejected: Sequence[Message], where: str = "row") -> Comparison:
    """The comparison of two whole conversations: the messages they share (up to the last turn both
    answer) are the prompt; what follows in each is its completion."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    while n > 0 and chosen[n - 1]["role"] == "assistant":  # a completion starts with an assistant turn
        n -= 1
    if n == 0:
        raise DataError(f"{where}: chosen and rejected share no prompt")
    return Comparison(list(chosen[:n]), list(chosen[n:]), list(rejected[n:]))


def _messages(value: Any, where: str, field: str, default_role: str) -> list[Message]:
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if isinstance(value, dict):
        value = [value]
    try:
        return from_openai_messages(list(value))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{where}: {field!r} is neither a string nor a list of chat messages ({exc!r})") from None


def row_to_comparison(row: Any, where: str = "row") -> Comparison:
    """One row in either format of the module docstring -> a :class:`Comparison`."""
    if not isinstance(row, dict) or "chosen" not in row or "rejected" not in row:
        fields = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise DataError(f"{where}: a comparison row needs 'chosen' and 'rejected' fields; got {fields}")
    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, str) and isinstance(rejected, str) and "prompt" not in row:
        if not _HH_TURN.search(chosen):
            raise DataError(f"{where}: 'chosen' is a string with no '\\n\\nHuman:' turns and there is no 'prompt'")
        return split_shared_prefix(parse_hh_transcript(chosen), parse_hh_transcript(rejected), where)
    chosen = _messages(chosen, where, "chosen", "assistant")
    rejected = _messages(rejected, where, "rejected", "assistant")
    if "prompt" not in row:
        return split_shared_prefix(chosen, rejected, where)
    prompt = _messages(row["prompt"], where, "prompt", "user")
    n = len(prompt)
    if chosen[:n] == prompt and rejected[:n] == prompt and len(chosen) > n and len(rejected) > n:
        chosen, rejected = chosen[n:], rejected[n:]  # full conversations that repeat the prompt
    elif len(chosen) > 1 and len(rejected) > 1 and chosen[0] == rejected[0] and chosen[0]["role"] != "assistant":
        return split_shared_prefix(chosen, rejected, where)
    return Comparison(prompt, chosen, rejected)


def load_comparisons(source: str, *, split: str = "train", n_synthetic: int = 2000, seed: int = 0,
                     max_examples: int | None = None) -> list[Comparison]:
    """All comparisons of a source (see the module docstring); at most ``max_examples`` of them."""
    task = task_from_spec(source)
    if task is not None:
        if not isinstance(task, AdditionTask):
            raise DataError(f"{source}: no synthetic comparisons for this task")
        return addition_comparisons(n_synthetic, digits=task.digits, seed=seed)
    rows = read_rows(source, split)
    n = len(rows) if max_examples is None else min(len(rows), max_examples)
    return [row_to_comparison(rows[i], rows.where(i)) for i in range(n)]


def addition_comparisons(n: int, *, digits: int = 2, seed: int = 0, exclude: Collection[str] = (),
                         min_error: int = 1, max_error: int = 20) -> list[Comparison]:
    """``a+b`` with the correct sum chosen over a wrong one: the sum plus or minus a random error in
    ``[min_error, max_error]`` (never negative)."""
    if not 1 <= min_error <= max_error:
        raise ConfigError(f"need 1 <= min_error <= max_error, got {min_error} and {max_error}")
    task = AdditionTask(digits=digits)
    rng = random.Random(seed + 7919)
    out = []
    for problem in task.problems(n, seed=seed, exclude=exclude):
        right = int(problem.reference)
        error = rng.randint(min_error, max_error)
        wrong = right - error if right - error >= 0 and rng.random() < 0.5 else right + error
        out.append(_sum_comparison(problem, wrong))
    return out


def carry_comparisons(n: int, *, digits: int = 2, seed: int = 0, exclude: Collection[str] = ()) -> list[Comparison]:
    """``a+b`` with the correct sum chosen over the sum with a missed or invented final carry: ``sum + 10**digits``
    when the sum has ``digits`` digits, ``sum - 10**digits`` when it has one more.

    Half the comparisons are of each kind (shuffled), so the longer answer is the right one in exactly
    half: a model that knows the answer format but not when a sum carries scores 50%.
    """
    bound = 10**digits
    problems = AdditionTask(digits=digits).problems(4 * n + 16, seed=seed, exclude=exclude)
    no_carry = [p for p in problems if int(p.reference) < bound][: n // 2]
    carry = [p for p in problems if int(p.reference) >= bound][: n - n // 2]
    if len(no_carry) + len(carry) < n:
        raise ConfigError(f"could not draw {n} carry comparisons of {digits}-digit sums")
    out = ([_sum_comparison(p, int(p.reference) + bound) for p in no_carry]
           + [_sum_comparison(p, int(p.reference) - bound) for p in carry])
    random.Random(seed + 7919).shuffle(out)
    return out


def _sum_comparison(problem: Problem, wrong: int) -> Comparison:
    return Comparison(problem.messages, [{"role": "assistant", "content": problem.reference}],
                      [{"role": "assistant", "content": str(wrong)}])


def completion_datum(prompt: Sequence[Message], completion: Sequence[Message], renderer: Renderer,
                     max_length: int | None = None) -> types.Datum | None:
    """Next-token datum of ``prompt + completion`` with weight 1 on the completion's tokens only;
    None when no completion token survives truncation to ``max_length`` tokens."""
    messages: list[Message] = ([cast(Message, {**m, "trainable": False}) for m in prompt]
                               + [cast(Message, {**m, "trainable": True}) for m in completion])
    model_input, weights = renderer.build_supervised_example(messages, "customized")
    return next_token_datum(model_input.to_ints(), weights, max_length)


def comparison_to_pair(comparison: Comparison, renderer: Renderer,
                       max_length: int | None = None) -> tuple[types.Datum, types.Datum] | None:
    """(chosen datum, rejected datum), or None when either completion is truncated away."""
    chosen = completion_datum(comparison.prompt, comparison.chosen, renderer, max_length)
    rejected = completion_datum(comparison.prompt, comparison.rejected, renderer, max_length)
    return None if chosen is None or rejected is None else (chosen, rejected)


def comparisons_to_pairs(comparisons: Sequence[Comparison], renderer: Renderer,
                         max_length: int | None = None) -> list[tuple[types.Datum, types.Datum]]:
    """Pairs of the comparisons that keep a trained token on both sides."""
    pairs = (comparison_to_pair(c, renderer, max_length) for c in comparisons)
    return [p for p in pairs if p is not None]


class KTOItem(NamedTuple):
    """One KTO example for the preference loop: its datum (weights on the completion), the datum of the same
    prompt with another example's completion (KTO's KL estimate is the policy's log-ratio on such
    mismatched pairs), and whether the completion is desirable."""

    datum: types.Datum
    kl_datum: types.Datum
    desirable: bool


def unpaired(comparisons: Sequence[Comparison]) -> list[LabeledCompletion]:
    """KTO data from comparisons with no pairing left in it: the chosen completion of the even-numbered
    comparisons (desirable) and the rejected completion of the odd-numbered ones (undesirable)."""
    return [LabeledCompletion(c.prompt, c.chosen, True) if i % 2 == 0
            else LabeledCompletion(c.prompt, c.rejected, False) for i, c in enumerate(comparisons)]


def labeled_to_items(labeled: Sequence[LabeledCompletion], renderer: Renderer, max_length: int | None = None, *,
                     seed: int = 0) -> list[KTOItem]:
    """The :class:`KTOItem` of each example that keeps a trained token; each example's mismatched completion is
    that of the next example in a ``seed``-shuffled cycle (so never its own, when there are two or more)."""
    order = list(range(len(labeled)))
    random.Random(seed + 104729).shuffle(order)
    other = {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}
    items = []
    for i, example in enumerate(labeled):
        datum = completion_datum(example.prompt, example.completion, renderer, max_length)
        kl_datum = completion_datum(example.prompt, labeled[other[i]].completion, renderer, max_length)
        if datum is not None and kl_datum is not None:
            items.append(KTOItem(datum, kl_datum, bool(example.desirable)))
    return items
