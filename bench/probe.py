"""CPU peak-memory measurements, each in a fresh process.

A forkserver started once per run imports torch / transformers / peft / the backend, then forks
one clean child per measurement (``max_tasks_per_child=1``): the child loads the model, builds
the inputs, and measures one call with :func:`bench.memory.measure`. Nothing allocated by the
other side, or by earlier timing runs, can hide in the child's heap.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from . import baseline, memory, ours


def _trainer(side: str, model_dir: Path, seqs: list[list[int]], device: str, dtype: torch.dtype,
             rows_per_micro_batch: int | None):
    dev = torch.device(device)
    if side == "ours":
        return ours.Trainer(ours.service_client(dev, dtype), model_dir, seqs)
    return baseline.Trainer(model_dir, seqs, dev, dtype, rows_per_micro_batch)


def step_memory(side: str, model_dir: Path, seqs: list[list[int]], device: str, dtype: torch.dtype,
                rows_per_micro_batch: int | None, optimizer_step: bool) -> dict:
    """Peak memory and duration of one training step (or only forward_backward) of one side."""
    trainer = _trainer(side, model_dir, seqs, device, dtype, rows_per_micro_batch)
    fn = trainer.step if optimizer_step else trainer.forward_backward
    start = time.perf_counter()
    loss, stats = memory.measure(fn, torch.device(device))
    return dict(memory=stats.as_dict(), seconds=time.perf_counter() - start, loss=loss)


class ProbePool:
    """Runs probe functions in fresh forked children of a preloaded forkserver."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(
            ["bench.probe", "bench.multilora", "cookbook.backend.local", "transformers.models.qwen3.modeling_qwen3"])

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        with ProcessPoolExecutor(max_workers=1, mp_context=self._ctx, max_tasks_per_child=1) as pool:
            return pool.submit(fn, *args).result()
