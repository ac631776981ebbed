"""Pipelined training steps: submit step N+1 before waiting for step N.

A loop's step is split in two: ``submit(step)`` sends the step's requests (``forward_backward``,
``optim_step``) and returns their futures; ``finish(submitted)`` waits for them and does the
bookkeeping (metrics, hooks, checkpoints). :func:`run_pipelined` keeps one step queued ahead, so
the backend never idles while the loop waits, except after a step for which ``wait_after(step)``
holds (hooks or a checkpoint are due): that step is finished before the next is submitted, so they
see exactly the weights after it. :class:`Submitted` is what a ``submit`` returns, and
:func:`step_metrics` the metrics every such step logs.

A leaf: imports ``tinker`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tinker import APIFuture, types

S = TypeVar("S")


@dataclass
class Submitted:
    """One submitted step: its futures and what its metrics need."""

    step: int
    adam: types.AdamParams
    fb: APIFuture[types.ForwardBackwardOutput]
    opt: APIFuture[types.OptimStepResponse]
    tokens: int
    weight: float = 0.0  # total loss weight of the batch (per-token losses divide by it)


def step_metrics(done: Submitted, opt: types.OptimStepResponse | None, elapsed: float) -> dict[str, Any]:
    """``learning_rate``, ``tokens``, ``tokens_per_s``, ``step_time_s`` and ``optim/grad_norm``."""
    row: dict[str, Any] = {"learning_rate": done.adam.learning_rate, "tokens": done.tokens,
                           "tokens_per_s": done.tokens / max(elapsed, 1e-9), "step_time_s": elapsed}
    if opt is not None and opt.metrics:
        row.update({f"optim/{k.split(':')[0]}": v for k, v in opt.metrics.items() if k.startswith("grad_norm")})
    return row


def run_pipelined(start: int, total: int, submit: Callable[[int], S], finish: Callable[[S], None],
                  wait_after: Callable[[int], bool]) -> None:
    """Steps ``start .. total-1``, each submitted before the previous one is finished."""
    pending: S | None = None
    for step in range(start, total):
        current = submit(step)  # step N goes in before step N-1 is awaited
        if pending is not None:
            finish(pending)
        pending = current
        if wait_after(step):
            finish(pending)
            pending = None
    if pending is not None:
        finish(pending)


def every(step: int, period: int) -> bool:
    """True after every ``period``-th step (0-based ``step``; ``period`` 0: never)."""
    return period > 0 and (step + 1) % period == 0
