"""ASGI middleware in front of every route: the API-key check and the request-size limit.

Runs before any route reads a body, so a request with a wrong key or an oversized body costs the
server next to nothing and never reaches the backend.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/api/v1/healthz"})  # answered without a key (load balancers, readiness probes)
OPEN_PREFIXES = ("/api/v1/files/",)  # signed download links: the link is the credential


def key_allowed(key: str | None, allowed_keys: tuple[str, ...]) -> bool:
    """With ``allowed_keys``: one of them (constant-time comparison). Without: any ``tml-`` key."""
    if not key:
        return False
    if allowed_keys:
        return any(hmac.compare_digest(key.encode(), k.encode()) for k in allowed_keys)
    return key.startswith("tml-")


class Guard:
    def __init__(self, app: ASGIApp, *, allowed_keys: tuple[str, ...], max_request_bytes: int) -> None:
        self.app, self.allowed_keys, self.max_bytes = app, allowed_keys, max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get(b"x-api-key")
        open_path = scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES)
        if not open_path and not key_allowed(key, self.allowed_keys):
            await _error(401, "missing or invalid API key (send it in the X-API-Key header)")(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _error(400, f"bad Content-Length {length!r}")(scope, receive, send)
                return
            if int(length) > self.max_bytes:
                await self._too_large(f"{int(length)} bytes")(scope, receive, send)
                return
        # Read the whole body here (bounded), then hand it to the route as one message.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(f"more than {self.max_bytes} bytes")(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        scope.setdefault("state", {})["api_key"] = key or ""  # the routes' per-key quotas
        await self.app(scope, replay, send)

    def _too_large(self, size: str) -> JSONResponse:
        return _error(413, f"the request body ({size}) exceeds the server's limit of {self.max_bytes} bytes "
                           "(max_request_bytes)")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "category": "user"}, status_code=status)
