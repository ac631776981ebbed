"""Wall-clock timing of competing sides, interleaved in one process.

Every side runs ``warmup`` untimed calls, then ``repeats`` timed calls. The timed calls alternate
between sides in an ABBA pattern (A B, B A, A B, ...) so that slow drift in the machine's load
(other processes, thermal state) hits every side alike; the reported figure is the median.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Wait for queued device work, so a timer around a call covers all of it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def as_dict(self) -> dict:
        return {"median_s": self.median, "all_s": self.seconds}


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def interleaved(
    sides: dict[str, Callable[[], Any]],
    device: torch.device,
    *,
    warmup: int,
    repeats: int,
    on_call: Callable[[str], None] | None = None,
) -> dict[str, Timings]:
    """Time every side ``repeats`` times, interleaved, after ``warmup`` calls each."""
    names = list(sides)
    for name in names:
        for _ in range(warmup):
            if on_call:
                on_call(f"{name} (warm-up)")
            sides[name]()
    result = {name: Timings() for name in names}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else reversed(names):
            if on_call:
                on_call(f"{name} ({rep + 1}/{repeats})")
            seconds, _ = timed(sides[name], device)
            result[name].seconds.append(seconds)
    return result
