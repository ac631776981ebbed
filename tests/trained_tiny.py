"""A short quickstart run shared by the eval, sweep, plot and server tests (built once per session).

Six steps of the quickstart (checkpoints after steps 3 and 6, the quickstart's own held-out
accuracy logged at both): too short to learn addition, but a real run directory with real
checkpoints, which is what those tests need.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def one_compute_thread() -> Iterator[None]:
    """The local backend's engine computes with one thread meanwhile.

    On the shared 2-core machine another busy process leaves two spinning OpenMP threads waiting
    on each other: a decode batch measured 0.15 s with one thread and 4 s with two. Results do
    not depend on it."""
    import torch

    import cookbook

    engine = cookbook.service_client("local").engine
    previous = engine.call(torch.get_num_threads)
    engine.call(lambda: torch.set_num_threads(1))
    try:
        yield
    finally:
        engine.call(lambda: torch.set_num_threads(previous))


@functools.cache
def quickstart_run() -> Path:
    from recipes.sl.quickstart import Config, main

    log_path = Path(tempfile.mkdtemp(prefix="cookbook-eval-qs-")) / "qs"
    main(Config(max_steps=6, save_every=3, eval_every=3, n_train=384, n_show=0, progress=False,
                log_path=str(log_path)))
    return log_path


def checkpoints(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "checkpoints.jsonl").read_text().splitlines() if line.strip()]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
