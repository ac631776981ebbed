"""What the REST calls read: training runs (on disk, under the checkpoint root) and sessions (in memory).

A training run is recorded in ``<root>/<run_id>/run.json`` when its training client is created
(base model, LoRA rank or full fine-tuning, optimizer, owner, session, project, creation time, the
``user_metadata`` the client gave), so runs and their checkpoints outlive the process and a
restarted server lists them. Each request's time is kept in memory (``touch``) and written to
``run.json`` with every checkpoint. A run directory without ``run.json`` (written by an older
version) is listed from its checkpoints, owned by nobody (visible to everyone).

Sessions (one per :class:`~cookbook.backend.local.clients.ServiceClient`, or per Tinker-server
session) are kept in memory: their runs, samplers, metadata and status.

Owners: ``"local"`` for in-process clients; the Tinker server uses a hash of the API key.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import checkpoints
from .lora import LoraSpec

RUN_FILE = "run.json"
LOCAL_OWNER = "local"


@dataclass
class RunRecord:
    training_run_id: str
    base_model: str
    lora: LoraSpec | None  # None: full fine-tuning
    optimizer: str = "adamw"
    owner: str | None = LOCAL_OWNER  # None: legacy run, anyone may read it
    session_id: str | None = None
    project_id: str | None = None
    created_at: float = 0.0
    last_request_time: float = 0.0
    user_metadata: dict[str, str] | None = None
    copied_from: str | None = None  # a copy made by copy_weights (holds checkpoints, cannot be trained)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        d = json.loads(text)
        d["lora"] = LoraSpec(**d["lora"]) if d.get("lora") else None
        return cls(**d)


@dataclass
class CheckpointEntry:
    run_id: str
    kind: str
    name: str
    directory: Path
    info: checkpoints.CheckpointInfo

    @property
    def checkpoint_id(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def path(self) -> str:
        return checkpoints.path_of(self.run_id, self.kind, self.name)


class Runs:
    """The run records under one checkpoint root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._last_request: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self, record: RunRecord) -> None:
        record.created_at = record.created_at or time.time()
        record.last_request_time = record.created_at
        self._write(record)

    def _write(self, record: RunRecord) -> None:
        directory = self.root / record.training_run_id
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{RUN_FILE}.tmp"
        tmp.write_text(record.to_json())
        os.replace(tmp, directory / RUN_FILE)

    def touch(self, run_id: str) -> None:
        self._last_request[run_id] = time.time()

    def update(self, record: RunRecord) -> None:
        with self._lock:
            self._write(record)

    def save_touch(self, run_id: str) -> None:
        """Write the last request time to ``run.json`` (with each checkpoint)."""
        record = self.get(run_id)
        if record is not None and record.owner is not None:
            record.last_request_time = self.last_request(record)
            with self._lock:
                self._write(record)

    def last_request(self, record: RunRecord) -> float:
        return max(self._last_request.get(record.training_run_id, 0.0), record.last_request_time, record.created_at)

    def get(self, run_id: str) -> RunRecord | None:
        if not run_id or "/" in run_id or run_id in (".", ".."):
            return None
        directory = self.root / run_id
        file = directory / RUN_FILE
        if file.is_file():
            return RunRecord.from_json(file.read_text())
        return self._legacy(run_id, directory)

    def _legacy(self, run_id: str, directory: Path) -> RunRecord | None:
        entries = self.checkpoints(run_id)
        if not entries:
            return None
        info = entries[-1].info
        created = min(e.info.created_at or e.directory.stat().st_mtime for e in entries)
        return RunRecord(run_id, info.base_model, info.lora, info.optimizer, owner=None, created_at=created,
                         last_request_time=max(e.directory.stat().st_mtime for e in entries))

    def all(self) -> list[RunRecord]:
        if not self.root.is_dir():
            return []
        found = (self.get(d.name) for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        return [r for r in found if r is not None]

    def checkpoints(self, run_id: str) -> list[CheckpointEntry]:
        """The run's checkpoints that have not expired, oldest first."""
        out = []
        for kind in checkpoints.KINDS:
            kind_dir = self.root / run_id / kind
            if not kind_dir.is_dir():
                continue
            for directory in kind_dir.iterdir():
                if directory.name.startswith(".") or not (directory / checkpoints.INFO_FILE).is_file():
                    continue
                if checkpoints.expired(directory):
                    continue
                info = checkpoints.read_info(directory)
                out.append(CheckpointEntry(run_id, kind, directory.name, directory, info))
        return sorted(out, key=lambda e: (e.info.created_at, e.name))


@dataclass
class SessionRecord:
    session_id: str
    owner: str
    created_at: float = field(default_factory=time.time)
    user_metadata: dict[str, str] | None = None
    display_name: str | None = None
    project_id: str | None = None
    training_run_ids: list[str] = field(default_factory=list)
    sampler_ids: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=lambda: {"type": "active"})


class Sessions:
    """Every session of this process (bounded: the oldest finished ones are forgotten first)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._sessions: dict[str, SessionRecord] = {}
        self._lock = threading.Lock()

    def add(self, record: SessionRecord) -> SessionRecord:
        with self._lock:
            self._sessions[record.session_id] = record
            while len(self._sessions) > self.limit:
                oldest = next((s for s in self._sessions.values() if s.status["type"] != "active"),
                              next(iter(self._sessions.values())))
                del self._sessions[oldest.session_id]
        return record

    def get(self, session_id: str) -> SessionRecord | None:
        return self._sessions.get(session_id)

    def __iter__(self) -> Iterator[SessionRecord]:
        with self._lock:
            return iter(list(self._sessions.values()))

    def finish(self, session_id: str, reason: str, detail: str | None = None) -> None:
        """The client ended the session (``success`` / ``errored`` / ``interrupted``); the first end stays."""
        self.end(session_id, {"type": "client_finished", "reason": {"type": reason}, "detail": detail})

    def end(self, session_id: str, status: dict[str, Any]) -> None:
        record = self._sessions.get(session_id)
        if record is not None and record.status["type"] == "active":
            record.status = status


@dataclass(frozen=True)
class SamplerRecord:
    sampler_id: str
    session_id: str
    base_model: str
    model_path: str | None


class Registry:
    """Runs, sessions and samplers, shared by every service client of one checkpoint root in this process."""

    _by_root: dict[Path, Registry] = {}
    _lock = threading.Lock()

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = Runs(root)
        self.sessions = Sessions()
        self.samplers: dict[str, SamplerRecord] = {}

    @classmethod
    def of(cls, root: Path) -> Registry:
        key = Path(os.path.abspath(root))
        with cls._lock:
            if key not in cls._by_root:
                cls._by_root[key] = cls(root)
            return cls._by_root[key]
