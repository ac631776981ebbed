"""Futures returned by every local-backend operation (the ``tinker.APIFuture`` interface)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from concurrent.futures import Future, InvalidStateError
from typing import Any, Generic, TypeVar

from tinker import APIFuture

from . import openmp

T = TypeVar("T")


class LocalFuture(APIFuture[T], Generic[T]):
    """A ``concurrent.futures.Future`` that is also awaitable: ``.result()`` or ``await fut``."""

    def __init__(self, future: Future | None = None) -> None:
        self._future: Future = future if future is not None else Future()

    @classmethod
    def completed(cls, value: T) -> "LocalFuture[T]":
        fut: LocalFuture[T] = cls()
        fut._future.set_result(value)
        return fut

    def result(self, timeout: float | None = None) -> T:
        if not self._future.done():  # a caller that waits is not computing: free its OpenMP team
            openmp.release_thread_team()
        return self._future.result(timeout)

    async def result_async(self, timeout: float | None = None) -> T:
        return await asyncio.wait_for(asyncio.wrap_future(self._future), timeout)

    def future(self) -> Future:
        return self._future

    def done(self) -> bool:
        return self._future.done()

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self._future).__await__()

    # used by the engine. A future can be cancelled before its request has run (an asyncio task awaiting
    # it was cancelled: ``asyncio.wrap_future`` cancels the future it wraps); the request still runs, in
    # order, and its result is dropped, so the engine thread never fails on it.
    def _set(self, value: Any) -> None:
        with contextlib.suppress(InvalidStateError):
            self._future.set_result(value)

    def _fail(self, exc: BaseException) -> None:
        with contextlib.suppress(InvalidStateError):
            self._future.set_exception(exc)
