"""The REST calls of ``tinker`` 0.38's ``RestClient`` against the local registry and checkpoint root.

:class:`RestClient` (from ``ServiceClient.create_rest_client()``) answers as the service client's
owner sees things: ``access_scope="owned"`` lists what the owner created; ``"accessible"`` adds runs
with a published checkpoint and runs with no owner (written before runs were recorded). Every method
returns a completed :class:`LocalFuture` (or raises a typed error at once, as every local request
does): ``NotFoundError`` for a run, checkpoint, session or sampler the owner cannot see,
``ConflictError`` for publishing a public checkpoint (or unpublishing a private one),
``InvalidRequestError`` for bad arguments, ``UnsupportedError`` for what this backend does not keep
(billing, audit logs, request traces). Paths are ``local://`` here; the Tinker server makes one with
``scheme="tinker://"``, so the same calls speak its paths.

Project ids are labels: a session's (``ServiceClient(project_id=...)``, ``assign_session_project``)
goes to the runs it creates; ``list_training_runs(project_id=...)`` filters by it; ``copy_weights``
puts the copy in the destination project.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from tinker import types

from . import checkpoints, errors, optimizer
from .futures import LocalFuture
from .registry import CheckpointEntry, RunRecord, SessionRecord

if TYPE_CHECKING:
    from .clients import ServiceClient

AccessScope = Literal["owned", "accessible"]
URL_LIFETIME_S = 3600.0


def _time(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _done(value: Any) -> LocalFuture:
    return LocalFuture.completed(value)


class RestClient:
    """REST calls as ``service``'s owner (``scheme``: how checkpoint paths are spelled)."""

    def __init__(self, service: ServiceClient, *, owner: str | None = None, scheme: str = checkpoints.SCHEME) -> None:
        self.service, self.scheme = service, scheme
        self.owner = owner or service.owner
        self.registry = service.registry
        self.runs = service.registry.runs

    # --- paths ------------------------------------------------------------------------------
    def _path(self, entry: CheckpointEntry) -> str:
        return f"{self.scheme}{entry.run_id}/{entry.kind}/{entry.name}"

    def _parse(self, path: str) -> tuple[str, str, str]:
        for scheme in (self.scheme, checkpoints.SCHEME):
            if isinstance(path, str) and path.startswith(scheme):
                parts = path[len(scheme):].split("/")
                if len(parts) == 3 and parts[1] in checkpoints.KINDS and all(p not in ("", ".", "..") for p in parts):
                    return parts[0], parts[1], parts[2]
        raise errors.InvalidRequestError(f"bad checkpoint path {path!r}: expected "
                                         f"{self.scheme}<run>/<weights|sampler_weights|external_weights>/<name>")

    # --- access ---------------------------------------------------------------------------
    def _owns(self, record: RunRecord) -> bool:
        return record.owner == self.owner

    def _visible(self, record: RunRecord, scope: AccessScope) -> bool:
        if self._owns(record):
            return True
        if scope != "accessible":
            return False
        return record.owner is None or any(e.info.public for e in self.runs.checkpoints(record.training_run_id))

    def _run(self, run_id: str, scope: AccessScope = "owned") -> RunRecord:
        _check_scope(scope)
        record = self.runs.get(run_id) if isinstance(run_id, str) else None
        if record is None or not self._visible(record, scope):
            raise errors.NotFoundError(f"no training run {run_id!r} that you may see (access_scope={scope!r})")
        return record

    def _entry(self, path: str, *, own: bool) -> CheckpointEntry:
        """The checkpoint at ``path``: one the owner may read (own/published/unowned), or with ``own`` only its own."""
        run_id, kind, name = self._parse(path)
        record = self.runs.get(run_id)
        entry = next((e for e in self.runs.checkpoints(run_id) if e.kind == kind and e.name == name), None)
        readable = record is not None and entry is not None and (
            self._owns(record) or (not own and (record.owner is None or entry.info.public)))
        if record is None or entry is None or not readable:
            raise errors.NotFoundError(f"no checkpoint {path} that you {'own' if own else 'may read'}")
        return entry

    # --- conversions ----------------------------------------------------------------------
    def _checkpoint(self, entry: CheckpointEntry) -> types.Checkpoint:
        info = entry.info
        return types.Checkpoint(
            checkpoint_id=entry.checkpoint_id, checkpoint_type=checkpoints.KIND_TYPES[entry.kind],  # type: ignore[arg-type]
            time=_time(info.created_at or entry.directory.stat().st_mtime), tinker_path=self._path(entry),
            size_bytes=checkpoints.size_bytes(entry.directory), public=info.public, user_metadata=info.user_metadata,
            expires_at=_time(info.expires_at) if info.expires_at is not None else None)

    def _training_run(self, record: RunRecord) -> types.TrainingRun:
        entries = self.runs.checkpoints(record.training_run_id)
        latest = {kind: next((e for e in reversed(entries) if e.kind == kind), None)
                  for kind in (checkpoints.TRAINING, checkpoints.SAMPLER)}
        return types.TrainingRun(
            training_run_id=record.training_run_id, base_model=record.base_model, model_owner=record.owner or "",
            is_lora=record.lora is not None, lora_rank=record.lora.rank if record.lora else None,
            last_request_time=_time(self.runs.last_request(record)),
            last_checkpoint=self._maybe(latest[checkpoints.TRAINING]),
            last_sampler_checkpoint=self._maybe(latest[checkpoints.SAMPLER]), user_metadata=record.user_metadata)

    def _maybe(self, entry: CheckpointEntry | None) -> types.Checkpoint | None:
        return None if entry is None else self._checkpoint(entry)

    # --- capabilities, training runs --------------------------------------------------------
    def get_server_capabilities(self) -> LocalFuture[types.GetServerCapabilitiesResponse]:
        return _done(self.service.get_server_capabilities())

    def get_training_run(self, training_run_id: str,
                         access_scope: AccessScope = "owned") -> LocalFuture[types.TrainingRun]:
        return _done(self._training_run(self._run(training_run_id, access_scope)))

    def get_training_run_by_tinker_path(self, tinker_path: str,
                                        access_scope: AccessScope = "owned") -> LocalFuture[types.TrainingRun]:
        return self.get_training_run(self._parse(tinker_path)[0], access_scope)

    def list_training_runs(self, limit: int = 20, offset: int = 0, access_scope: AccessScope = "owned",
                           project_id: str | None = None) -> LocalFuture[types.TrainingRunsResponse]:
        """Newest first (by creation)."""
        _check_scope(access_scope)
        _check_page(limit, offset)
        runs = [r for r in self.runs.all() if self._visible(r, access_scope)
                and (project_id is None or r.project_id == project_id)]
        runs.sort(key=lambda r: (r.created_at, r.training_run_id), reverse=True)
        page = [self._training_run(r) for r in runs[offset:offset + limit]]
        return _done(types.TrainingRunsResponse(training_runs=page, cursor=types.Cursor(
            offset=offset, limit=limit, total_count=len(runs))))

    def get_weights_info_by_tinker_path(self, tinker_path: str) -> LocalFuture[types.WeightsInfoResponse]:
        info = self._entry(tinker_path, own=False).info
        lora = info.lora
        return _done(types.WeightsInfoResponse(
            base_model=info.base_model, optimizer_config=optimizer.config_of(info.optimizer), is_lora=lora is not None,
            lora_rank=lora.rank if lora else None, train_unembed=lora.train_unembed if lora else None,
            train_mlp=lora.train_mlp if lora else None, train_attn=lora.train_attn if lora else None))

    # --- checkpoints ------------------------------------------------------------------------
    def list_checkpoints(self, training_run_id: str) -> LocalFuture[types.CheckpointsListResponse]:
        """The run's checkpoints, oldest first (a run you do not own shows only its published ones)."""
        record = self._run(training_run_id, "accessible")
        entries = [e for e in self.runs.checkpoints(record.training_run_id)
                   if self._owns(record) or record.owner is None or e.info.public]
        return _done(types.CheckpointsListResponse(checkpoints=[self._checkpoint(e) for e in entries]))

    def list_user_checkpoints(self, limit: int = 100, offset: int = 0) -> LocalFuture[types.CheckpointsListResponse]:
        """Every checkpoint of the owner's runs, newest first."""
        _check_page(limit, offset)
        entries = [e for r in self.runs.all() if self._owns(r) for e in self.runs.checkpoints(r.training_run_id)]
        entries.sort(key=lambda e: (e.info.created_at, e.run_id, e.name), reverse=True)
        return _done(types.CheckpointsListResponse(
            checkpoints=[self._checkpoint(e) for e in entries[offset:offset + limit]],
            cursor=types.Cursor(offset=offset, limit=limit, total_count=len(entries))))

    def delete_checkpoint(self, training_run_id: str, checkpoint_id: str) -> LocalFuture[None]:
        return self.delete_checkpoint_from_tinker_path(f"{self.scheme}{training_run_id}/{checkpoint_id}")

    def delete_checkpoint_from_tinker_path(self, tinker_path: str) -> LocalFuture[None]:
        entry = self._entry(tinker_path, own=True)
        shutil.rmtree(entry.directory)
        return _done(None)

    def publish_checkpoint_from_tinker_path(self, tinker_path: str) -> LocalFuture[None]:
        """Make a checkpoint readable by every owner (loading, sampling, weights info); 409 if already public."""
        return self._set_public(tinker_path, True)

    def unpublish_checkpoint_from_tinker_path(self, tinker_path: str) -> LocalFuture[None]:
        return self._set_public(tinker_path, False)

    def _set_public(self, tinker_path: str, public: bool) -> LocalFuture[None]:
        entry = self._entry(tinker_path, own=True)
        if entry.info.public == public:
            raise errors.ConflictError(f"checkpoint {tinker_path} is already {'public' if public else 'private'}")
        checkpoints.write_info(entry.directory, _replace(entry.info, public=public))
        return _done(None)

    def set_checkpoint_ttl_from_tinker_path(self, tinker_path: str, ttl_seconds: int | None) -> LocalFuture[None]:
        """Expire the checkpoint ``ttl_seconds`` from now (1 hour to 10 years), or never (None)."""
        entry = self._entry(tinker_path, own=True)
        checkpoints.write_info(entry.directory, _replace(entry.info, expires_at=checkpoints.expiry(ttl_seconds)))
        return _done(None)

    def external_files(self, tinker_path: str) -> tuple[CheckpointEntry, dict[str, Any]]:
        """The files of an external-weights checkpoint (relative name -> path), as the owner may read it."""
        run_id, kind, _ = self._parse(tinker_path)
        if kind != checkpoints.EXTERNAL:
            raise errors.InvalidRequestError(
                f"{tinker_path} is not an external weights checkpoint ({self.scheme}<run>/external_weights/<name>, "
                "as save_weights_external returns)")
        entry = self._entry(tinker_path, own=False)
        files = {str(f.relative_to(entry.directory)): f for f in sorted(entry.directory.rglob("*"))
                 if f.is_file() and f.name != checkpoints.INFO_FILE}
        return entry, files

    def get_external_weights_urls(self, tinker_path: str) -> LocalFuture[types.ExternalWeightsUrlsResponse]:
        """``file://`` URLs of the export's files (the Tinker server answers with signed HTTP URLs instead)."""
        _, files = self.external_files(tinker_path)
        return _done(types.ExternalWeightsUrlsResponse(
            urls={name: path.resolve().as_uri() for name, path in files.items()},
            expires=_time(time.time() + URL_LIFETIME_S)))

    def copy_weights(self, path: str, destination_project_id: str | None = None, *, ttl_seconds: int | None = None,
                     weights_access_token: str | None = None) -> LocalFuture[str]:
        """Copy a checkpoint you may read into a new run of ``destination_project_id`` (hard links)."""
        entry = self._entry(path, own=False)
        copied = self.service.copy_weights(checkpoints.path_of(entry.run_id, entry.kind, entry.name),
                                           ttl_seconds=ttl_seconds, project_id=destination_project_id).result()
        run_id, kind, name = self._parse(copied)
        return _done(f"{self.scheme}{run_id}/{kind}/{name}")

    # --- sessions and samplers ------------------------------------------------------------
    def _session(self, session_id: str, scope: AccessScope = "owned") -> SessionRecord:
        _check_scope(scope)
        record = self.registry.sessions.get(session_id) if isinstance(session_id, str) else None
        if record is None or record.owner != self.owner:
            raise errors.NotFoundError(f"no session {session_id!r} that you may see")
        return record

    def get_session(self, session_id: str,
                    access_scope: AccessScope = "owned") -> LocalFuture[types.GetSessionResponse]:
        record = self._session(session_id, access_scope)
        return _done(types.GetSessionResponse(
            training_run_ids=list(record.training_run_ids), sampler_ids=list(record.sampler_ids),
            user_metadata=record.user_metadata, display_name=record.display_name))

    def list_sessions(self, limit: int = 20, offset: int = 0,
                      access_scope: AccessScope = "owned") -> LocalFuture[types.ListSessionsResponse]:
        """The owner's sessions of this process, newest first."""
        _check_scope(access_scope)
        _check_page(limit, offset)
        mine = sorted((s for s in self.registry.sessions if s.owner == self.owner),
                      key=lambda s: (s.created_at, s.session_id), reverse=True)
        return _done(types.ListSessionsResponse(sessions=[s.session_id for s in mine[offset:offset + limit]]))

    def assign_session_project(self, session_id: str, project_id: str) -> LocalFuture[None]:
        """Move a session and its runs into a project (a label here)."""
        if not isinstance(project_id, str) or not project_id:
            raise errors.InvalidRequestError("assign_session_project needs a project_id")
        record = self._session(session_id)
        record.project_id = project_id
        for run_id in record.training_run_ids:
            run = self.runs.get(run_id)
            if run is not None and run.owner == self.owner:
                run.project_id = project_id
                self.runs.update(run)
        return _done(None)

    def search_sessions(self, request: types.SessionSearchRequest) -> LocalFuture[types.SessionSearchResponse]:
        """The owner's sessions matching every filter, newest first, one page at a time."""
        if not isinstance(request, types.SessionSearchRequest):
            raise errors.InvalidRequestError("search_sessions takes a tinker.types.SessionSearchRequest")
        owner = request.owner
        wanted_owners = None if owner.type == "accessible" else (
            {self._urn(self.owner)} if owner.type == "own" else set(getattr(owner, "owner_urns", [])))
        found = [s for s in self.registry.sessions
                 if (wanted_owners is None or self._urn(s.owner) in wanted_owners) and _matches(s, request)]
        if owner.type != "own":  # other owners' sessions stay private here
            found = [s for s in found if s.owner == self.owner]
        found.sort(key=lambda s: (s.created_at, s.session_id), reverse=True)
        if request.cursor is not None:
            last = (request.cursor.last_created_at.timestamp(), request.cursor.last_session_id)
            found = [s for s in found if (s.created_at, s.session_id) < last]
        page = found[:request.limit]
        cursor = None
        if len(found) > request.limit:
            cursor = types.SessionSearchCursor(last_created_at=_time(page[-1].created_at),
                                               last_session_id=page[-1].session_id)
        return _done(types.SessionSearchResponse(sessions=[self._summary(s) for s in page], next_cursor=cursor))

    def _summary(self, session: SessionRecord) -> types.SessionSummary:
        entries = [e for run_id in session.training_run_ids for e in self.runs.checkpoints(run_id)]
        return types.SessionSummary.model_validate(dict(
            session_id=session.session_id, created_at=_time(session.created_at), owner=self._urn(session.owner),
            project_id=session.project_id or "", status=session.status, checkpoints_count=len(entries),
            display_name=session.display_name, user_metadata=session.user_metadata,
            checkpoint_storage_bytes=sum(checkpoints.size_bytes(e.directory) for e in entries)))

    @staticmethod
    def _urn(owner: str | None) -> str:
        return f"tml:user:{owner or 'unknown'}"

    def get_sampler(self, sampler_id: str) -> LocalFuture[types.GetSamplerResponse]:
        record = self.registry.samplers.get(sampler_id) if isinstance(sampler_id, str) else None
        session = self.registry.sessions.get(record.session_id) if record else None
        if record is None or session is None or session.owner != self.owner:
            raise errors.NotFoundError(f"no sampler {sampler_id!r} that you may see")
        path = record.model_path
        if path is not None and path.startswith(checkpoints.SCHEME):
            path = self.scheme + path[len(checkpoints.SCHEME):]
        return _done(types.GetSamplerResponse(sampler_id=record.sampler_id, base_model=record.base_model,
                                              model_path=path))

    def whoami(self) -> LocalFuture[types.WhoamiResponse]:
        return _done(types.WhoamiResponse(user_urn=self._urn(self.owner), org_urn="tml:organization:local"))

    def get_current_checkpoint_storage_usage(
            self, project_id: str | None = None) -> LocalFuture[types.CurrentCheckpointStorageUsageResponse]:
        """The owner's stored checkpoints, grouped by project (no prices: nothing is billed here)."""
        groups: dict[str | None, list[int]] = {}
        for run in self.runs.all():
            if self._owns(run) and (project_id is None or run.project_id == project_id):
                sizes = groups.setdefault(run.project_id, [])
                sizes += [checkpoints.size_bytes(e.directory) for e in self.runs.checkpoints(run.training_run_id)]
        return _done(types.CurrentCheckpointStorageUsageResponse(data=[
            types.CurrentCheckpointStorageUsageItem(
                project_id=project, org_user_urn=self._urn(self.owner), checkpoint_count=len(sizes),
                size_bytes=sum(sizes), size_gigabytes=sum(sizes) / 1e9)
            for project, sizes in sorted(groups.items(), key=lambda kv: str(kv[0]))]))

    def get_billing_usage(self, *_: Any, **__: Any) -> LocalFuture[Any]:
        raise errors.UnsupportedError("get_billing_usage: nothing is billed by this backend, so it keeps no usage")

    def get_audit_log(self, *_: Any, **__: Any) -> LocalFuture[Any]:
        raise errors.UnsupportedError("get_audit_log: this backend keeps no audit log")

    def export_session_trace(self, session_id: str) -> LocalFuture[str]:
        self._session(session_id)
        raise errors.UnsupportedError(
            "export_session_trace: this backend records no per-request timeline to export; the run's metrics.jsonl "
            "(cookbook view) has each step's timings")


def _check_scope(scope: object) -> None:
    if scope not in ("owned", "accessible"):
        raise errors.InvalidRequestError(f"access_scope must be 'owned' or 'accessible', got {scope!r}")


def _check_page(limit: object, offset: object) -> None:
    for name, value in (("limit", limit), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise errors.InvalidRequestError(f"{name} must be an integer >= 0, got {value!r}")


def _matches(session: SessionRecord, request: types.SessionSearchRequest) -> bool:
    by_id = request.session_id is not None and session.session_id == request.session_id
    by_name = request.display_name is not None and all(
        word in (session.display_name or "").lower() for word in request.display_name.lower().split())
    if (request.session_id is not None or request.display_name is not None) and not (by_id or by_name):
        return False
    if request.project_ids is not None and session.project_id not in request.project_ids:
        return False
    if any((session.user_metadata or {}).get(k) != v for k, v in request.user_metadata.items()):
        return False
    return request.statuses is None or any(_status_matches(session.status, q) for q in request.statuses)


def _status_matches(status: dict[str, Any], query: Any) -> bool:
    if status["type"] != query.type:
        return False
    reasons: Iterable[str] | None = getattr(query, "reasons", None)
    return reasons is None or status.get("reason", {}).get("type") in reasons


def _replace(info: checkpoints.CheckpointInfo, **changes: Any) -> checkpoints.CheckpointInfo:
    return dataclasses.replace(info, **changes)
