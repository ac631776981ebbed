"""Pipelined training steps: submit step N+1 before waiting for step N.

A loop's step is split in two: ``submit(step)`` sends the step's requests (``forward_backward``,
``optim_step``) and returns their futures; ``finish(submitted)`` waits for them and does the
bookkeeping (metrics, hooks, checkpoints). :func:`run_pipelined` keeps one step queued ahead, so
the backend never idles while the loop waits, except after a step for which ``wait_after(step)``
holds (hooks or a checkpoint are due): that step is finished before the next is submitted, so they
see exactly the weights after it.

A leaf: imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

S = TypeVar("S")


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
