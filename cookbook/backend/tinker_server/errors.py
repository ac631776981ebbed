"""Errors the server answers with, and how any exception becomes a reply body.

Every error body has the shape the SDK reads from a failed future: ``{"error": message,
"category": "user" | "server"}``. A request the server rejects outright (bad body, unknown id,
wrong key, too large) gets it with a 4xx status; a request that was accepted and then failed
(a bad token id, a missing checkpoint, ...) gets it as the result of ``retrieve_future`` (status
200), which the SDK raises as ``tinker.RequestFailedError`` with that category.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from cookbook.errors import UserError

log = logging.getLogger("cookbook.tinker_server")


class ApiError(Exception):
    """A request the server refuses; ``status`` is its HTTP status."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Gone(ApiError):
    status = 410


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class TooManyRequests(ApiError):
    status = 429


class Unsupported(UserError):
    """A Tinker feature this server does not implement (the request is answered as a user error)."""


def error_body(exc: BaseException) -> dict[str, str]:
    """``{"error", "category"}`` for any exception: user errors keep their message; others are logged."""
    if isinstance(exc, RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        return {"error": f"invalid request: {problems}", "category": "user"}
    if isinstance(exc, ApiError):
        return {"error": exc.message, "category": "user" if exc.status < 500 else "server"}
    if isinstance(exc, UserError):
        return {"error": f"{type(exc).__name__}: {exc}", "category": "user"}
    log.error("request failed with an unexpected error", exc_info=exc)
    return {"error": f"internal server error ({type(exc).__name__}: {exc}); see the server log",
            "category": "server"}


def status_of(exc: BaseException) -> int:
    """The HTTP status of an exception raised while answering a request directly."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, RequestValidationError):
        return 400
    if isinstance(exc, UserError):
        return 404 if isinstance(exc, FileNotFoundError) else 400
    return 500


def error_response(exc: BaseException) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=status_of(exc))


class ErrorRoute(APIRoute):
    """A route whose every exception becomes a JSON error reply (4xx for the client's mistakes, else 500)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException:
                raise
            except Exception as exc:  # noqa: BLE001 - never let a request take the server down
                return error_response(exc)
        return guarded
