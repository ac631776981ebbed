"""A caller thread's idle OpenMP team is released when it hands the engine work or waits for it.

libgomp keeps a team of helper threads per thread that ran a parallel op; more helper threads than
cores make it throttle every team (``cookbook/backend/local/openmp.py``). The property tested: once
the caller submits to the engine, its own helpers are gone and the engine's team is the one left.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import torch

from cookbook.backend.local import Engine, openmp

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").exists() or openmp._pause_fn() is None or torch.get_num_threads() < 2,
    reason="needs Linux, torch on GNU libgomp and >= 2 intra-op threads")


def _process_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _parallel_op() -> None:
    a = torch.randn(384, 384)
    (a @ a).sum().item()


def test_caller_team_released_on_submit_and_engine_team_kept():
    engine = Engine("cpu", torch.float32)
    try:
        engine.call(_parallel_op)  # the engine's own team exists from here on
        with_engine_team = _process_threads()
        _parallel_op()  # the caller's thread now has a team as well
        with_caller_team = _process_threads()
        assert with_caller_team > with_engine_team
        engine.submit(lambda: None).result()
        assert _process_threads() == with_engine_team
        # the engine's team survived: running on the worker again creates no thread
        engine.call(_parallel_op)
        assert _process_threads() == with_engine_team
    finally:
        engine.close()


def test_engine_thread_never_releases_its_own_team():
    engine = Engine("cpu", torch.float32)
    try:
        assert engine.call(openmp.release_thread_team) is False
        assert openmp.release_thread_team() is True
        assert threading.get_ident() not in openmp._compute_threads
    finally:
        engine.close()
