"""Stability records: what a sampler with ``record_stability_info=True`` keeps about each sequence,
and how a training datum's provenance finds them (``stable_reinforce``).

A record holds, per sampled sequence: the prompt, the sampled tokens, and each token's behaviour
log-probability, i.e. its log-probability under the distribution it was really drawn from: the
reported (tempered, untruncated) logprob minus the log of the probability mass top-k / top-p kept
(0 for a greedy choice: it was certain). That is the "minimal additional information captured at
sampling time" this backend chose; the hosted service does not publish what it records.

Records belong to the session (the :class:`~cookbook.backend.local.clients.ServiceClient`) that
sampled them, are named by ``SampledSequence.sequence_id``, and live for one day after their last
use: each training request that names a sequence restarts its day (the Tinker docs' lifetime).
Past ``max_bytes`` the least recently used records are dropped first; a datum naming a dropped,
expired or unknown sequence is refused with :class:`UnknownSequenceError`.

:func:`resolve` checks a datum's provenance against the records (the runs tile the input and the
targets; every run's tokens are the recorded ones) and gives the loss its per-target behaviour
logprobs and sampled-token mask.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tinker import types

from . import errors

DAY_S = 24 * 3600.0


class UnknownSequenceError(errors.InvalidRequestError):
    """A datum's provenance names a sequence with no stability record in this session."""


class ProvenanceError(errors.InvalidRequestError):
    """A datum's provenance does not tile it, or names tokens the sequence did not have."""


@dataclass
class StabilityRecord:
    prompt: np.ndarray  # int64 prompt tokens of the request
    tokens: np.ndarray  # int64 sampled tokens
    behaviour_logprobs: np.ndarray  # float32, one per sampled token
    last_used: float = field(default=0.0)

    @property
    def nbytes(self) -> int:
        return int(self.prompt.nbytes + self.tokens.nbytes + self.behaviour_logprobs.nbytes) + 128


class StabilityStore:
    """One session's records, by sequence id (thread-safe: samplers write, training requests read)."""

    def __init__(self, ttl_s: float = DAY_S, max_bytes: int = 256 * 2**20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_bytes, self.clock = ttl_s, max_bytes, clock
        self._records: OrderedDict[str, StabilityRecord] = OrderedDict()  # least recently used first
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def add(self, sequence_id: str, record: StabilityRecord) -> None:
        with self._lock:
            now = self.clock()
            record.last_used = now
            old = self._records.pop(sequence_id, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._records[sequence_id] = record
            self._bytes += record.nbytes
            self._expire(now)

    def take(self, sequence_ids: Sequence[str]) -> dict[str, StabilityRecord]:
        """The records of ``sequence_ids``, each one's day restarted; raises for any that is missing."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            found = {}
            for sid in dict.fromkeys(sequence_ids):
                record = self._records.get(sid)
                if record is None:
                    raise UnknownSequenceError(
                        f"no stability record for sequence_id {sid!r}: sample it in this session with a sampling "
                        "client made with record_stability_info=True (records last one day after their last use)")
                record.last_used = now
                self._records.move_to_end(sid)
                found[sid] = record
            return found

    def _expire(self, now: float) -> None:
        while self._records:
            sid, oldest = next(iter(self._records.items()))
            if now - oldest.last_used <= self.ttl_s and self._bytes <= self.max_bytes:
                return
            del self._records[sid]
            self._bytes -= oldest.nbytes


Span = types.PromptProvenanceSpan | types.SampledProvenanceSpan


def sequence_ids(datum: types.Datum) -> list[str]:
    return [s.sequence_id for s in (datum.model_input_spans or []) + (datum.loss_fn_input_spans or [])]


def resolve(index: int, datum: types.Datum, tokens: Sequence[int], targets: np.ndarray,
            records: dict[str, StabilityRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(behaviour logprob per target, 1.0 where the target is a recorded sampled token) for one datum."""
    what = f"data[{index}]"
    if datum.model_input_spans is None or datum.loss_fn_input_spans is None:
        raise errors.MissingLossInputError(
            f"{what} has no provenance: stable_reinforce needs Datum.with_provenance(...) naming the sampled "
            "sequences (SampledSequence.sequence_id) its tokens come from")
    _check_tiling(f"{what} model_input", datum.model_input_spans, np.asarray(tokens, dtype=np.int64), records)
    n = len(targets)
    behaviour = np.zeros(n, dtype=np.float32)
    sampled = np.zeros(n, dtype=np.float32)
    start = 0
    for span in _check_tiling(f"{what} target_tokens", datum.loss_fn_input_spans, targets, records):
        if isinstance(span, types.SampledProvenanceSpan):
            record = records[span.sequence_id]
            behaviour[start:start + span.length] = record.behaviour_logprobs[span.offset:span.offset + span.length]
            sampled[start:start + span.length] = 1.0
        start += span.length
    return behaviour, sampled


def _check_tiling(what: str, spans: Sequence[Span], values: np.ndarray,
                  records: dict[str, StabilityRecord]) -> Sequence[Span]:
    total = sum(s.length for s in spans)
    if total != len(values):
        raise ProvenanceError(f"{what}: provenance spans cover {total} positions, the field has {len(values)}")
    start = 0
    for span in spans:
        if not isinstance(span, (types.PromptProvenanceSpan, types.SampledProvenanceSpan)):
            raise ProvenanceError(f"{what}: a provenance span must be a Prompt/SampledProvenanceSpan, "
                                  f"got {type(span).__name__}")
        record = records[span.sequence_id]
        kind, source = ("sampled", record.tokens) if isinstance(span, types.SampledProvenanceSpan) else (
            "prompt", record.prompt)
        end = span.offset + span.length
        if end > len(source) or not np.array_equal(values[start:start + span.length], source[span.offset:end]):
            raise ProvenanceError(
                f"{what}: positions {start}..{start + span.length - 1} are not the {kind} tokens "
                f"{span.offset}..{end - 1} of sequence {span.sequence_id!r}")
        start += span.length
    return spans
