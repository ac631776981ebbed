"""Peak memory of one call, above what the process held just before it.

CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (live tensors only,
not the caching allocator's reserve), minus ``memory_allocated`` before the call.

CPU: resident set size. Linux keeps a high-water mark (``VmHWM``) that writing ``5`` to
``/proc/self/clear_refs`` resets, so the peak is exact however short it lasts: reset, read
``VmRSS``, run, read ``VmHWM``. Freed heap memory that the allocator keeps would hide part of a
later call's peak, so on CPU every measurement runs in a fresh process (see ``probe``). Where
``clear_refs`` is not writable, the fallback is ``ru_maxrss``, which also counts any earlier
peak in the process (model loading): the ``method`` field says which one was used.
"""

from __future__ import annotations

import gc
import resource
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TypeVar

import torch

T = TypeVar("T")
MB = 1024 * 1024


@dataclass
class MemStats:
    peak_delta_mb: float  # peak during the call minus usage just before it
    peak_total_mb: float  # absolute peak during the call (process RSS / allocated CUDA memory)
    method: str

    def as_dict(self) -> dict:
        return asdict(self)

    def short(self) -> str:
        return f"{format_mb(self.peak_delta_mb)} ({format_mb(self.peak_total_mb)})"


def format_mb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def measure(fn: Callable[[], T], device: torch.device) -> tuple[T, MemStats]:
    """Run ``fn`` once and return its result with the peak memory it used."""
    gc.collect()
    if device.type == "cuda":
        return _measure_cuda(fn, device)
    return _measure_rss(fn)


def _measure_cuda(fn: Callable[[], T], device: torch.device) -> tuple[T, MemStats]:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return out, MemStats((peak - before) / MB, peak / MB, "cuda max_memory_allocated")


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _measure_rss(fn: Callable[[], T]) -> tuple[T, MemStats]:
    if sys.platform.startswith("linux") and _reset_hwm():
        before = _status_kb("VmRSS")
        out = fn()
        peak = _status_kb("VmHWM")
        return out, MemStats((peak - before) / 1024, peak / 1024, "VmHWM after clear_refs reset")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    before = current_rss_bytes()
    out = fn()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    return out, MemStats((peak - before) / MB, peak / MB, "ru_maxrss (includes earlier peaks)")


def current_rss_bytes() -> int:
    try:
        return _status_kb("VmRSS") * 1024
    except (OSError, KeyError):
        return 0
