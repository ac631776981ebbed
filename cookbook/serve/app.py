"""The FastAPI application: the OpenAI routes, the API-key check, and errors as OpenAI error bodies."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cookbook.serve import tokens
from cookbook.serve.model import ServedModel
from cookbook.serve.protocol import ApiError, ChatCompletionRequest, CompletionRequest, error_body, parse_body

log = logging.getLogger("cookbook.serve")

OPEN_PATHS = frozenset({"/health"})
MAX_REQUEST_BYTES = 16 * 2**20


def create_app(model: ServedModel, *, api_key: str | None = None) -> FastAPI:
    """The OpenAI-compatible server for ``model`` as an ASGI app (``api_key``: require ``Bearer <key>``)."""
    app = FastAPI(title="cookbook OpenAI-compatible server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.model = model

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if api_key and request.url.path not in OPEN_PATHS and not _key_ok(request, api_key):
            return _error(ApiError(401, "missing or invalid API key (send 'Authorization: Bearer <key>')",
                                   code="invalid_api_key"))
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_BYTES):
            return _error(ApiError(413, f"the request body is larger than {MAX_REQUEST_BYTES} bytes"))
        try:
            return await call_next(request)
        except Exception as exc:  # noqa: BLE001 - a bug answers 500 with a message, never a traceback
            log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
            return _error(ApiError(500, f"internal server error ({type(exc).__name__}); see the server log",
                                   kind="server_error"))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(ApiError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}"))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return model.models()

    @app.get("/v1/models/{model_id:path}")
    async def model_card(model_id: str) -> dict[str, Any]:
        if model_id != model.name:
            raise ApiError(404, f"the model {model_id!r} does not exist; this server serves {model.name!r}",
                           param="model", code="model_not_found")
        return model.model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> dict[str, Any]:
        return await model.chat(parse_body(await read_body(request), ChatCompletionRequest))

    @app.post("/v1/completions")
    async def completions(request: Request) -> dict[str, Any]:
        return await model.complete(parse_body(await read_body(request), CompletionRequest))

    # vLLM's tokenizer routes (cookbook/serve/tokens.py), for lm-evaluation-harness's remote tokenizer
    @app.get("/tokenizer_info")
    async def tokenizer_info() -> dict[str, Any]:
        return tokens.tokenizer_info(model.tokenizer, model.context_length)

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict[str, Any]:
        return tokens.tokenize(model.tokenizer, parse_body(await read_body(request), tokens.TokenizeRequest),
                               model.context_length)

    @app.post("/detokenize")
    async def detokenize(request: Request) -> dict[str, Any]:
        return tokens.detokenize(model.tokenizer, parse_body(await read_body(request), tokens.DetokenizeRequest))

    return app


async def read_body(request: Request, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """The body, counted as it is read: a chunked body (no Content-Length) gets the same 413."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _key_ok(request: Request, api_key: str) -> bool:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(key.strip().encode(), api_key.encode())


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


__all__ = ["create_app", "error_body"]
