"""Keep the engine's OpenMP team the only one awake: release a caller thread's idle team.

On CPU, torch parallelises ops with OpenMP, and GNU libgomp gives every thread that runs a
parallel op its own thread team, kept alive (docked) after the op. libgomp counts every such
thread, and once that count exceeds the cores it "throttles": threads between parallel regions
spin ~300x less before sleeping on a futex, so each of the thousands of small parallel regions of
a training step pays a wake-up. A user whose own thread ran torch work (a reward model, a peft
step, a custom loss) before driving our clients left such a team behind, and the engine's steps
ran 1.4-1.6x slower for the rest of the process (``python -m bench.train_processes --caller-torch``).

The fix: whenever a thread other than the engine's hands the engine work or waits for it, that
thread's idle team is released (``omp_pause_resource_all``, which in libgomp frees the calling
thread's own pool only and lowers the count). The thread is not computing at that moment; if it
runs parallel torch work again, libgomp builds a new team for it (tens of microseconds).

Only libgomp is touched: LLVM's libomp pauses the whole runtime on that call, including a team
busy on the engine's thread, so there the call is skipped. Nothing happens on runtimes without
the symbol or off Linux.
"""

from __future__ import annotations

import ctypes
import threading
from functools import cache
from pathlib import Path

_OMP_PAUSE_SOFT = 1
_compute_threads: set[int] = set()


def register_compute_thread() -> None:
    """Mark the calling thread as one whose team must stay (an engine's worker)."""
    _compute_threads.add(threading.get_ident())


def unregister_compute_thread() -> None:
    _compute_threads.discard(threading.get_ident())


@cache
def _pause_fn():
    """``omp_pause_resource_all`` of the libgomp loaded in this process, or None."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    import torch  # noqa: F401 - make sure the runtime torch uses is loaded before looking for it

    paths = {line.split()[-1] for line in maps.read_text().splitlines()
             if "/libgomp" in line and line.split()[-1].startswith("/")}
    for path in sorted(paths):
        try:
            fn = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        return fn
    return None


def release_thread_team() -> bool:
    """Release the calling thread's idle OpenMP team, if it has one (never an engine thread's).

    True when libgomp was asked to (it answers at once when the thread has no team)."""
    if threading.get_ident() in _compute_threads:
        return False
    fn = _pause_fn()
    return fn is not None and fn(_OMP_PAUSE_SOFT) == 0
