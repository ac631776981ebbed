"""What a user provides to preference learning: comparisons of two completions of one prompt
(:class:`Comparison`), or completions labelled good or bad on their own (:class:`LabeledCompletion`, for KTO)."""

from __future__ import annotations

from dataclasses import dataclass

from renderers import Message


@dataclass(frozen=True)
class Comparison:
    """``chosen`` is preferred over ``rejected`` as the continuation of ``prompt``.

    ``prompt`` is the conversation so far (ending with the turn the completions answer); ``chosen``
    and ``rejected`` are one or more messages each (usually one assistant message).
    """

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]


@dataclass(frozen=True)
class LabeledCompletion:
    """One completion of ``prompt`` judged on its own: ``desirable`` or not (KTO's unpaired data)."""

    prompt: list[Message]
    completion: list[Message]
    desirable: bool
