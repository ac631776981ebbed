"""Futures of accepted requests: request ids, results kept until fetched, long polling.

Every request the SDK treats as asynchronous gets a :class:`Job` at once (its ``request_id`` goes
back in the submit reply) and is answered later through ``retrieve_future``. A finished job keeps
its encoded reply until the client fetches it, then for a short grace period (a retried fetch
still finds it), and at most ``ttl_s`` after finishing if nobody fetches it. Unfinished jobs never
expire. All methods run on the server's event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from pydantic import BaseModel
from tinker import APIFuture

from .errors import error_body
from .wire import PROTOBUF

JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    """An encoded response body."""

    body: bytes
    media_type: str

    @classmethod
    def json(cls, value: BaseModel | dict[str, Any]) -> Reply:
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", exclude_none=True)
        return cls(json.dumps(value).encode(), JSON)

    @classmethod
    def proto(cls, value: bytes | Message) -> Reply:
        return cls(value if isinstance(value, bytes) else value.SerializeToString(), PROTOBUF)

    @classmethod
    def failure(cls, exc: BaseException) -> Reply:
        return cls.json(error_body(exc))


class Job:
    """One accepted request: resolved once with a :class:`Reply` (a result or a failure body)."""

    def __init__(self, kind: str, owner: str = "") -> None:
        self.request_id = uuid.uuid4().hex
        self.kind, self.owner = kind, owner  # owner: the API key that sent it (for per-key quotas)
        self.finished_at: float | None = None
        self.fetched_at: float | None = None
        self._reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

    @property
    def done(self) -> bool:
        return self._reply.done()


class JobStore:
    def __init__(self, ttl_s: float = 3600.0, fetched_grace_s: float = 120.0) -> None:
        self.ttl_s, self.fetched_grace_s = ttl_s, fetched_grace_s
        self._jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task] = set()
        self.open_by_owner: Counter[str] = Counter()  # accepted, not finished

    def __len__(self) -> int:
        return len(self._jobs)

    def new(self, kind: str, owner: str = "") -> Job:
        job = Job(kind, owner)
        self._jobs[job.request_id] = job
        self.open_by_owner[owner] += 1
        return job

    def get(self, request_id: str) -> Job | None:
        return self._jobs.get(request_id)

    def resolve(self, job: Job, reply: Reply) -> None:
        if not job.done:
            job.finished_at = time.monotonic()
            job._reply.set_result(reply)
            self.open_by_owner[job.owner] -= 1
            if not self.open_by_owner[job.owner]:
                del self.open_by_owner[job.owner]

    def fail(self, job: Job, exc: BaseException) -> None:
        self.resolve(job, Reply.failure(exc))

    async def settle(self, job: Job, value: Any, finish: Callable[[Any], Reply]) -> None:
        """Resolve ``job`` with ``finish(value)``, awaiting ``value`` first if it is an ``APIFuture``
        (the backend's futures resolve on its worker thread; this waits without blocking the loop)."""
        try:
            result = await asyncio.wrap_future(value.future()) if isinstance(value, APIFuture) else value
            self.resolve(job, finish(result))
        except Exception as exc:  # noqa: BLE001 - it becomes the request's failure reply
            self.fail(job, exc)

    def complete(self, job: Job, value: Any, finish: Callable[[Any], Reply]) -> None:
        """:meth:`settle` in the background."""
        if isinstance(value, APIFuture):
            self.spawn(self.settle(job, value, finish))
        else:
            try:
                self.resolve(job, finish(value))
            except Exception as exc:  # noqa: BLE001
                self.fail(job, exc)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, job: Job, timeout: float) -> Reply | None:
        """The job's reply, waiting up to ``timeout`` seconds for it (None: still running)."""
        if not job.done:
            try:
                await asyncio.wait_for(asyncio.shield(job._reply), timeout)
            except TimeoutError:
                return None
        if job.fetched_at is None:
            job.fetched_at = time.monotonic()
        return job._reply.result()

    def sweep(self, now: float | None = None) -> int:
        """Forget finished jobs that were fetched a while ago or never fetched within the TTL."""
        now = time.monotonic() if now is None else now
        expired = [rid for rid, job in self._jobs.items() if job.finished_at is not None and (
            (job.fetched_at is not None and now - job.fetched_at > self.fetched_grace_s)
            or now - job.finished_at > self.ttl_s)]
        for rid in expired:
            del self._jobs[rid]
        return len(expired)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
