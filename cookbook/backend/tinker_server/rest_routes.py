"""The REST endpoints of ``tinker.RestClient`` (training runs, checkpoints, sessions, samplers, copies,
external-weights downloads), answered by the local backend's ``RestClient`` as the API key's owner
sees things (:meth:`ServerState.rest`), with ``tinker://`` paths.

Errors are JSON ``{"error", "category": "user"}``: 404 for what the key cannot see, 400 for bad
arguments and for what this server does not keep (billing, audit logs, request traces). Publishing
a checkpoint that is already public (or unpublishing a private one) is a 400, not the hosted
service's 409: the SDK 0.38 retries a 409 for five minutes before giving up.

``get_external_weights_urls`` answers with URLs of this server, ``/api/v1/files/<token>/<file>``,
signed with a per-process secret and valid for an hour: they are fetched with a plain GET and no
API key (as the SDK's ``tinker checkpoint download`` does), and name one export's files only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from tinker import types

from . import paths
from .errors import BadRequest, ErrorRoute, NotFound
from .routes import parse_body
from .state import ServerState, model_id_of, owner_of

router = APIRouter(prefix="/api/v1", route_class=ErrorRoute)
FILES_PREFIX = "/api/v1/files/"
URL_LIFETIME_S = 3600


def _state(request: Request) -> ServerState:
    return request.app.state.server


def _key(request: Request) -> str:
    return getattr(request.state, "api_key", "")


async def _call(request: Request, method: str, *args: Any, **kwargs: Any) -> Any:
    """``method`` of the key's REST client, in a worker thread (it reads the checkpoint root)."""
    state = _state(request)
    rest = state.rest(_key(request))
    future = await state.run_blocking(lambda: getattr(rest, method)(*args, **kwargs))
    return future.result()


def _json(value: pydantic.BaseModel | None) -> Any:
    return None if value is None else value.model_dump(mode="json")


async def _body(request: Request, model: type[pydantic.BaseModel]) -> Any:
    return await parse_body(request, model)


def _checkpoint_path(run_id: str, kind: str, name: str) -> str:
    return f"{paths.WIRE}{run_id}/{kind}/{name}"


# --- training runs -------------------------------------------------------------------------

@router.get("/training_runs")
async def list_training_runs(request: Request, limit: int = 20, offset: int = 0, access_scope: str = "owned",
                             project_id: str | None = None) -> Any:
    return _json(await _call(request, "list_training_runs", limit, offset, access_scope, project_id))


@router.get("/training_runs/{run_id}")
async def get_training_run(run_id: str, request: Request, access_scope: str = "owned") -> Any:
    return _json(await _call(request, "get_training_run", run_id, access_scope))


@router.get("/training_runs/{run_id}/checkpoints")
async def list_checkpoints(run_id: str, request: Request) -> Any:
    return _json(await _call(request, "list_checkpoints", run_id))


@router.get("/checkpoints")
async def list_user_checkpoints(request: Request, limit: int = 100, offset: int = 0) -> Any:
    return _json(await _call(request, "list_user_checkpoints", limit, offset))


class _WeightsInfoRequest(pydantic.BaseModel):
    tinker_path: str


@router.post("/weights_info")
async def weights_info(request: Request) -> Any:
    req = await _body(request, _WeightsInfoRequest)
    return _json(await _call(request, "get_weights_info_by_tinker_path", req.tinker_path))


@router.delete("/training_runs/{run_id}/checkpoints/{kind}/{name}")
async def delete_checkpoint(run_id: str, kind: str, name: str, request: Request) -> Any:
    await _call(request, "delete_checkpoint_from_tinker_path", _checkpoint_path(run_id, kind, name))
    return None


@router.post("/training_runs/{run_id}/checkpoints/{kind}/{name}/publish")
async def publish(run_id: str, kind: str, name: str, request: Request) -> Any:
    await _call(request, "publish_checkpoint_from_tinker_path", _checkpoint_path(run_id, kind, name))
    return None


@router.delete("/training_runs/{run_id}/checkpoints/{kind}/{name}/publish")
async def unpublish(run_id: str, kind: str, name: str, request: Request) -> Any:
    await _call(request, "unpublish_checkpoint_from_tinker_path", _checkpoint_path(run_id, kind, name))
    return None


class _TtlRequest(pydantic.BaseModel):
    ttl_seconds: int | None = None


@router.put("/training_runs/{run_id}/checkpoints/{kind}/{name}/ttl")
async def set_ttl(run_id: str, kind: str, name: str, request: Request) -> Any:
    req = await _body(request, _TtlRequest)
    await _call(request, "set_checkpoint_ttl_from_tinker_path", _checkpoint_path(run_id, kind, name), req.ttl_seconds)
    return None


@router.get("/training_runs/{run_id}/checkpoints/{kind}/{name}/external_weights_urls")
async def external_weights_urls(run_id: str, kind: str, name: str, request: Request) -> Any:
    state = _state(request)
    rest = state.rest(_key(request))
    path = _checkpoint_path(run_id, kind, name)
    entry, files = await state.run_blocking(rest.external_files, path)
    expires = int(time.time()) + URL_LIFETIME_S
    token = _sign(state.file_secret, str(entry.directory.relative_to(state.service.checkpoint_root)), expires)
    base = str(request.base_url).rstrip("/")
    urls = {name: f"{base}{FILES_PREFIX}{token}/{name}" for name in files}
    return _json(types.ExternalWeightsUrlsResponse(urls=urls, expires=dt.datetime.fromtimestamp(expires, dt.UTC)))


def _sign(secret: bytes, directory: str, expires: int) -> str:
    payload = base64.urlsafe_b64encode(json.dumps([directory, expires]).encode()).decode().rstrip("=")
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{payload}.{mac}"


def _verify(secret: bytes, token: str) -> str:
    payload, _, mac = token.partition(".")
    if not hmac.compare_digest(hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:32], mac):
        raise NotFound("unknown download link")
    try:
        directory, expires = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        raise NotFound("unknown download link") from None
    if time.time() > expires:
        raise NotFound("this download link has expired; ask get_external_weights_urls for a new one")
    return str(directory)


@router.get("/files/{token}/{file_path:path}")
async def download(token: str, file_path: str, request: Request) -> Any:
    """One file of an external-weights export, by a signed link (no API key: the link is the credential)."""
    state = _state(request)
    root = state.service.checkpoint_root.resolve()
    directory = (root / _verify(state.file_secret, token)).resolve()
    target = (directory / file_path).resolve()
    if not target.is_relative_to(directory) or not target.is_file() or target.name == "checkpoint.json":
        raise NotFound(f"no file {file_path!r} in this export")
    return FileResponse(Path(target))


@router.post("/copy_weights")
async def copy_weights(request: Request) -> Any:
    """A copy (hard links) of a checkpoint the key may read, in a new run: of the given session's
    ``model_seq_id``, else of a new session in ``destination_project_id``."""
    state = _state(request)
    req = await _body(request, types.CopyWeightsRequest)
    key = _key(request)
    idempotency = request.headers.get("x-idempotency-key")
    if idempotency and (key, idempotency) in state.copies:
        return state.copies[(key, idempotency)]
    local = paths.to_local(req.source_path)
    if req.session_id is not None:
        session = state.session(req.session_id)
        backend = session.backend
        run_id = model_id_of(req.session_id, req.model_seq_id) if req.model_seq_id is not None else None
        copied = await state.run_blocking(lambda: backend.copy_weights(local, ttl_seconds=req.ttl_seconds,
                                                                       run_id=run_id).result())
    else:
        if not req.destination_project_id:
            raise BadRequest("copy_weights needs destination_project_id or session_id")
        backend = state.service.new_session(owner=owner_of(key), project_id=req.destination_project_id)
        copied = await state.run_blocking(lambda: backend.copy_weights(
            local, ttl_seconds=req.ttl_seconds, project_id=req.destination_project_id).result())
        backend.close("success")
    reply = _json(types.CopyWeightsResponse(tinker_path=paths.to_wire(copied)))
    if idempotency:
        state.remember_copy((key, idempotency), reply)
    return reply


# --- sessions and samplers -------------------------------------------------------------------

@router.get("/sessions")
async def list_sessions(request: Request, limit: int = 20, offset: int = 0, access_scope: str = "owned") -> Any:
    return _json(await _call(request, "list_sessions", limit, offset, access_scope))


@router.post("/sessions/search")
async def search_sessions(request: Request) -> Any:
    req = await _body(request, types.SessionSearchRequest)
    return _json(await _call(request, "search_sessions", req))


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, request: Request, access_scope: str = "owned") -> Any:
    return _json(await _call(request, "get_session", session_id, access_scope))


class _ProjectRequest(pydantic.BaseModel):
    project_id: str


@router.put("/sessions/{session_id}/project")
async def assign_session_project(session_id: str, request: Request) -> Any:
    req = await _body(request, _ProjectRequest)
    await _call(request, "assign_session_project", session_id, req.project_id)
    return None


@router.get("/sessions/{session_id}/trace_export")
async def export_session_trace(session_id: str, request: Request) -> Any:
    return await _call(request, "export_session_trace", session_id)


@router.get("/samplers/{sampler_id}")
async def get_sampler(sampler_id: str, request: Request) -> Any:
    return _json(await _call(request, "get_sampler", sampler_id))


# --- what this server does not keep ------------------------------------------------------------

@router.get("/billing/usage/events")
async def billing_usage(request: Request) -> Any:
    return await _call(request, "get_billing_usage")


@router.get("/billing/usage/checkpoints/current")
async def checkpoint_storage(request: Request, project_id: str | None = None) -> Any:
    return _json(await _call(request, "get_current_checkpoint_storage_usage", project_id))


@router.get("/audit")
async def audit_log(request: Request) -> Any:
    return await _call(request, "get_audit_log")
