"""Futures returned by every local-backend operation (the ``tinker.APIFuture`` interface)."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from tinker import APIFuture

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
        return self._future.result(timeout)

    async def result_async(self, timeout: float | None = None) -> T:
        return await asyncio.wait_for(asyncio.wrap_future(self._future), timeout)

    def future(self) -> Future:
        return self._future

    def done(self) -> bool:
        return self._future.done()

    def __await__(self) -> Generator[Any, None, T]:
        return asyncio.wrap_future(self._future).__await__()

    # used by the engine
    def _set(self, value: Any) -> None:
        self._future.set_result(value)

    def _fail(self, exc: BaseException) -> None:
        self._future.set_exception(exc)
