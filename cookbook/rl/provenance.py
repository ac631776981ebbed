"""Provenance of RL training data: which sampled sequence each token of a training sequence came from.

``stable_reinforce`` trains on tokens the server can trace to its stability records
(``Datum.with_provenance``): each run of a sequence's tokens is a prompt run (positions of the
named sequence's prompt) or a sampled run (positions of its sampled tokens). A sequence tiled by
:class:`Run` s becomes a datum whose input is ``tokens[:-1]`` and whose targets are ``tokens[1:]``,
so the input's runs lose the last token and the targets' runs the first.

May import ``tinker`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tinker import types

Span = types.PromptProvenanceSpan | types.SampledProvenanceSpan


@dataclass(frozen=True)
class Run:
    sequence_id: str
    sampled: bool  # the sequence's sampled tokens (else its prompt)
    offset: int  # where the run starts in them
    length: int


def _spans(runs: Sequence[Run]) -> list[Span]:
    return [(types.SampledProvenanceSpan if r.sampled else types.PromptProvenanceSpan)(
        sequence_id=r.sequence_id, offset=r.offset, length=r.length) for r in runs if r.length > 0]


def datum_spans(runs: Sequence[Run]) -> tuple[list[Span], list[Span]]:
    """(spans of the input ``tokens[:-1]``, spans of the targets ``tokens[1:]``) of a sequence tiled by ``runs``."""
    runs = [r for r in runs if r.length > 0]
    inputs = list(runs[:-1]) + [Run(runs[-1].sequence_id, runs[-1].sampled, runs[-1].offset, runs[-1].length - 1)]
    targets = [Run(runs[0].sequence_id, runs[0].sampled, runs[0].offset + 1, runs[0].length - 1)] + list(runs[1:])
    return _spans(inputs), _spans(targets)


def with_provenance(datum: types.Datum, runs: Sequence[Run]) -> types.Datum:
    model_input, targets = datum_spans(runs)
    return datum.with_provenance(model_input=model_input, loss_fn_inputs=targets)
