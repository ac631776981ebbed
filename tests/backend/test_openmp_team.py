"""A caller thread's idle OpenMP team is released when it hands the engine work or waits for it.

libgomp keeps a team of helper threads per thread that ran a parallel op; more helper threads than
cores make it throttle every team (``cookbook/backend/local/openmp.py``). The property tested: once
the caller submits to the engine, its own helpers are gone and the engine's team is the one left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from cookbook.backend.local import Engine, openmp

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").exists() or openmp._pause_fn() is None or torch.get_num_threads() < 2,
    reason="needs Linux, torch on GNU libgomp and >= 2 intra-op threads")


# Run in a fresh interpreter: thread counts of this process depend on what earlier tests left
# running (engines, servers, CUDA's own threads), and the caller thread must start without a team.
_SCRIPT = """
import os, torch
from cookbook.backend.local import Engine

def threads():
    return len(os.listdir("/proc/self/task"))

def parallel_op():
    a = torch.randn(384, 384)
    (a @ a).sum().item()

engine = Engine("cpu", torch.float32)
try:
    engine.call(parallel_op)  # the engine's own team exists from here on
    with_engine_team = threads()
    parallel_op()  # the caller's thread now has a team as well
    with_caller_team = threads()
    assert with_caller_team > with_engine_team, (with_caller_team, with_engine_team)
    engine.submit(lambda: None).result()
    assert threads() == with_engine_team, ("caller team kept", threads(), with_engine_team)
    engine.call(parallel_op)  # the engine's team survived: running on the worker creates no thread
    assert threads() == with_engine_team, ("engine team lost", threads(), with_engine_team)
finally:
    engine.close()
"""


def test_caller_team_released_on_submit_and_engine_team_kept():
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                                     os.environ.get("PYTHONPATH")]))})
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_engine_thread_never_releases_its_own_team():
    engine = Engine("cpu", torch.float32)
    try:
        assert engine.call(openmp.release_thread_team) is False
        assert openmp.release_thread_team() is True
        assert threading.get_ident() not in openmp._compute_threads
    finally:
        engine.close()
