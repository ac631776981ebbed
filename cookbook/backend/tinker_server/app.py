"""The FastAPI application: routes, the guard middleware, error replies, background housekeeping."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cookbook.backend import service_client

from . import rest_routes, routes
from .config import ServerConfig
from .guard import Guard
from .state import ServerState

if TYPE_CHECKING:
    from cookbook.backend import LocalServiceClient

SWEEP_EVERY_S = 30.0


def create_app(config: ServerConfig | None = None, service: LocalServiceClient | None = None) -> FastAPI:
    """The server as an ASGI app.

    Args:
        config: settings (default :class:`ServerConfig()`: loopback, any ``tml-`` key).
        service: the backend's service client (default: ``cookbook.backend.service_client("local", ...)``
            with the config's device, dtype and checkpoint root, made when the server starts).
    """
    config = (config or ServerConfig()).check()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = service or cast("LocalServiceClient", service_client(
            "local", device=config.device, dtype=config.dtype, checkpoint_root=config.checkpoint_root))
        state = ServerState(backend, config)
        app.state.server = state
        sweeper = asyncio.get_running_loop().create_task(_sweep_forever(state))
        try:
            yield
        finally:
            sweeper.cancel()
            await state.close()

    app = FastAPI(title="cookbook Tinker-compatible server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.include_router(routes.router)
    app.include_router(rest_routes.router)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(Guard, allowed_keys=config.allowed_keys, max_request_bytes=config.max_request_bytes)
    return app


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Unknown endpoints and wrong methods, in the same error shape as everything else."""
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse({"error": f"{exc.detail}: {request.method} {request.url.path}", "category": "user"},
                        status_code=exc.status_code)


async def _sweep_forever(state: ServerState) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY_S)
        state.sweep()
