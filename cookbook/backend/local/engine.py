"""The engine owns the device: one worker thread runs every request in submission order.

Every torch computation of the backend runs on that thread, model loading and adapter creation
included (:meth:`Engine.call`). On CPU this matters: each thread that runs parallel torch ops gets
its own OpenMP thread team, and once libgomp manages more threads than there are cores it stops
spinning between parallel regions, which made small matmuls about 1.6x slower in measurements.

Training requests run one at a time, in the order they were submitted (so per-client order holds).
Sampling requests read frozen adapter snapshots, so they do not depend on training requests:
when the worker reaches one, it takes every sampling request queued for the same base model,
including ones submitted after later training requests, and decodes them as one batch.

Which requests share a batch depends on when they arrive (a few milliseconds' window), and a batch's
shape changes a row's floating-point results in the last bits. With ``COOKBOOK_DETERMINISTIC=1``
(or ``Engine(deterministic=True)``) every sampling request is decoded in a batch of its own, so its
tokens and logprobs depend only on the request: runs that sample concurrently (RL, on-policy
distillation) are then bitwise reproducible on CPU, at the cost of batching.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from . import openmp
from .futures import LocalFuture
from .model import BaseModel, resolve_device, resolve_dtype
from .sampler import SampleJob, sample_batch

T = TypeVar("T")


class _Op:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[], Any], future: LocalFuture) -> None:
        self.fn, self.future = fn, future


class _SampleOp:
    __slots__ = ("model", "job")

    def __init__(self, model: BaseModel, job: SampleJob) -> None:
        self.model, self.job = model, job


class Engine:
    def __init__(
        self,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        *,
        coalesce_window_s: float = 0.003,
        max_sample_rows: int = 256,
        train_token_budget: int = 16384,
        activation_checkpointing: bool = False,
        deterministic: bool | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.coalesce_window_s = coalesce_window_s
        self.max_sample_rows = max_sample_rows
        self.deterministic = deterministic  # None: $COOKBOOK_DETERMINISTIC, read at each request
        self.train_token_budget = train_token_budget
        self.activation_checkpointing = activation_checkpointing
        self._models: dict[str, BaseModel] = {}
        self.stats = {"sample_batches": 0, "sample_requests": 0}
        self._queue: deque[_Op | _SampleOp] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="cookbook-local-engine", daemon=True)
        self._worker.start()
        atexit.register(self.close)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker after the request it is running; pending requests fail."""
        with self._cv:
            self._closed = True
            pending, self._queue = list(self._queue), deque()
            self._cv.notify_all()
        for item in pending:
            future = item.future if isinstance(item, _Op) else item.job.future
            future._fail(RuntimeError("the local engine was closed before this request ran"))
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout)

    def model(self, base_model: str) -> BaseModel:
        """The shared frozen base model, loaded (on the worker thread) on first use."""
        loaded = self._models.get(base_model)
        if loaded is not None:  # no need to wait behind queued requests
            return loaded

        def load() -> BaseModel:
            if base_model not in self._models:
                self._models[base_model] = BaseModel.load(base_model, self.device, self.dtype,
                                                          activation_checkpointing=self.activation_checkpointing)
            return self._models[base_model]
        return self.call(load)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker thread, after the requests queued before it, and return its result."""
        if threading.current_thread() is self._worker:
            return fn()
        return self.submit(fn).result()

    def submit(self, fn: Callable[[], T]) -> LocalFuture[T]:
        future: LocalFuture[T] = LocalFuture()
        self._push(_Op(fn, future))
        return future

    def submit_sample(self, model: BaseModel, job: SampleJob) -> LocalFuture:
        self._push(_SampleOp(model, job))
        return job.future

    def _push(self, item: _Op | _SampleOp) -> None:
        openmp.release_thread_team()  # the caller's idle team would throttle ours (see openmp.py)
        with self._cv:
            if self._closed:
                raise RuntimeError("the local engine is closed")
            self._queue.append(item)
            self._cv.notify()

    def _run(self) -> None:
        openmp.register_compute_thread()
        try:
            self._serve()
        finally:
            openmp.unregister_compute_thread()

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                item = self._queue.popleft()
            if isinstance(item, _Op):
                self._run_op(item)
            elif self._sample_alone():
                self._run_samples([item])
            else:
                self._run_samples(self._gather_samples(item))

    def _sample_alone(self) -> bool:
        if self.deterministic is not None:
            return self.deterministic
        return os.environ.get("COOKBOOK_DETERMINISTIC", "") not in ("", "0")

    @staticmethod
    def _run_op(op: _Op) -> None:
        try:
            result = op.fn()
        except BaseException as exc:  # noqa: BLE001 - the caller receives it through the future
            op.future._fail(exc)
        else:
            op.future._set(result)

    def _gather_samples(self, first: _SampleOp) -> list[_SampleOp]:
        """Collect queued sample requests for the same model, waiting briefly for stragglers."""
        batch, rows = [first], first.job.num_samples
        deadline = time.monotonic() + self.coalesce_window_s
        while True:
            with self._cv:
                kept: deque[_Op | _SampleOp] = deque()
                while self._queue:
                    item = self._queue.popleft()
                    if (isinstance(item, _SampleOp) and item.model is first.model
                            and rows + item.job.num_samples <= self.max_sample_rows):
                        batch.append(item)
                        rows += item.job.num_samples
                    else:
                        kept.append(item)
                self._queue = kept
                remaining = deadline - time.monotonic()
                if remaining <= 0 or rows >= self.max_sample_rows:
                    return batch
                self._cv.wait(remaining)

    def _run_samples(self, ops: list[_SampleOp]) -> None:
        jobs = [op.job for op in ops]
        self.stats["sample_batches"] += 1
        self.stats["sample_requests"] += len(jobs)
        try:
            responses = sample_batch(ops[0].model, jobs)
        except BaseException as exc:  # noqa: BLE001
            for job in jobs:
                job.future._fail(exc)
            return
        for job, response in zip(jobs, responses):
            job.future._set(response)


_default_engines: dict[tuple[str, str, bool], Engine] = {}
_default_lock = threading.Lock()


def default_engine(device: str | None = None, dtype: str | torch.dtype | None = None,
                   activation_checkpointing: bool = False) -> Engine:
    """One engine per (device, dtype, checkpointing) per process, so clients share base-model weights."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    key = (str(dev), str(dt), activation_checkpointing)
    with _default_lock:
        if key not in _default_engines:
            _default_engines[key] = Engine(str(dev), dt, activation_checkpointing=activation_checkpointing)
        return _default_engines[key]
