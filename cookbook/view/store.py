"""What the viewer reads: the run, eval and sweep directories under the folders it was given.

- :class:`JsonlFile` reads a JSONL file incrementally (only the bytes appended since the last read;
  a file rewritten in place, as a resume rewrites ``metrics.jsonl``, is read again from the start).
  A malformed line is skipped with a warning naming ``file:line``; an incomplete last line (a run
  still writing it, or cut off by a crash) is held back with a warning until it is complete.
- :class:`Source` is one directory the viewer shows: a training run (``metrics.jsonl``,
  ``checkpoints.jsonl``, ``episodes.jsonl``, or a just-created ``config.json`` + ``log.txt``), an
  eval output (``results.jsonl``) or a sweep output (``results.csv``).
- :class:`Store` finds the sources under the given folders (again on every call, so a run that
  starts later appears) and is the only way to a file: :meth:`Store.file` refuses any path that is
  absolute, has a ``..`` part, or resolves (through links) outside the source's directory.

Reads files only; writes nothing. May import ``cookbook.errors`` only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cookbook.errors import MissingFileError

MAX_DEPTH = 6  # folder levels searched below each given folder (a sweep's cells sit 4 below it)
MAX_DIRS = 5000  # folders visited per search, so a huge tree cannot stall the viewer
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "weights", "sampler_weights", "wandb"})


def plain(value: Any) -> Any:
    """``value`` with NaN and infinities as None: what strict JSON (and a browser) accepts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class JsonlFile:
    """An append-only JSONL file read incrementally; ``keep(row)`` is what is stored per line
    (default: the row itself), alongside the line's byte offset for :meth:`read_line`."""

    def __init__(self, path: Path, label: str, keep: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.path, self.label, self.keep = path, label, keep
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.items: list[Any] = []
        self.offsets: list[int] = []
        self.bad: list[str] = []
        self.tail_warning: str | None = None
        self._offset = 0
        self._lines = 0
        self._head = b""
        self._identity: tuple[int, int] | None = None

    def refresh(self) -> JsonlFile:
        with self._lock:
            try:
                stat = os.stat(self.path)
            except OSError:
                self._reset()
                return self
            with open(self.path, "rb") as f:
                head = f.read(256)
                rewritten = (self._identity not in (None, (stat.st_dev, stat.st_ino)) or stat.st_size < self._offset
                             or head[: len(self._head)] != self._head)
                if rewritten:
                    self._reset()
                self._identity, self._head = (stat.st_dev, stat.st_ino), head
                if stat.st_size == self._offset and not rewritten:
                    return self
                f.seek(self._offset)
                data = f.read(stat.st_size - self._offset)
            self._consume(data)
        return self

    def _consume(self, data: bytes) -> None:
        end = data.rfind(b"\n") + 1
        position = self._offset
        for raw in data[:end].split(b"\n")[:-1]:
            self._lines += 1
            start, position = position, position + len(raw) + 1
            if not raw.strip():
                continue
            row, problem = _parse(raw)
            if problem:
                self.bad.append(f"{self.label}:{self._lines}: skipped a malformed line ({problem})")
                continue
            self.items.append(row if self.keep is None else self.keep(row))
            self.offsets.append(start)
        self._offset = position
        tail = data[end:]
        self.tail_warning = None
        if tail.strip():
            self.tail_warning = (f"{self.label}:{self._lines + 1}: the last line is incomplete (being written, or cut "
                                 "off); not shown until it ends")

    @property
    def warnings(self) -> list[str]:
        return self.bad + ([self.tail_warning] if self.tail_warning else [])

    def read_line(self, index: int) -> dict[str, Any] | None:
        """The full row of the ``index``-th kept line, read again from the file (None if it changed)."""
        with self._lock:
            if not 0 <= index < len(self.offsets):
                return None
            start = self.offsets[index]
        with open(self.path, "rb") as f:
            f.seek(start)
            row, problem = _parse(f.readline())
        return None if problem else row


def _parse(raw: bytes) -> tuple[Any, str | None]:
    try:
        row = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, str(exc).split(":")[0] if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
    if not isinstance(row, dict):
        return None, f"a JSON {type(row).__name__}, not an object"
    return row, None


def read_json(path: Path, label: str, warnings: list[str]) -> dict[str, Any]:
    """A JSON object file; {} with a warning when it is malformed (nothing when it is absent)."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        warnings.append(f"{label}: not readable as JSON ({str(exc).split(':')[0]}); ignored")
        return {}
    if not isinstance(value, dict):
        warnings.append(f"{label}: holds a JSON {type(value).__name__}, not an object; ignored")
        return {}
    return value


def read_csv(path: Path, label: str, warnings: list[str]) -> list[dict[str, Any]]:
    """Rows of a CSV table with numbers as numbers; a row of the wrong width is skipped with a warning."""
    try:
        text = path.read_text()
    except OSError as exc:
        warnings.append(f"{label}: not readable ({exc.strerror})")
        return []
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        return []
    rows = []
    for number, values in enumerate(reader, start=2):
        if not values:
            continue
        if len(values) != len(header):
            warnings.append(f"{label}:{number}: skipped a row of {len(values)} fields (the header has {len(header)})")
            continue
        rows.append({k: _number(v) for k, v in zip(header, values)})
    return rows


def _number(text: str) -> Any:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return plain(kind(text))
        except ValueError:
            pass
    return text


@dataclass
class Source:
    """One directory the viewer shows."""

    id: str  # "<root index>/<path relative to the root>", stable while the viewer runs
    name: str  # for people: the root's name and the relative path
    kind: str  # "run", "eval" or "sweep"
    path: Path  # resolved
    files: dict[str, JsonlFile] = field(default_factory=dict)

    def jsonl(self, name: str, keep: Callable[[dict[str, Any]], Any] | None = None) -> JsonlFile:
        """The incremental reader of ``name`` in this directory (made once, refreshed on each call)."""
        if name not in self.files:
            self.files[name] = JsonlFile(self.path / name, f"{self.name}/{name}", keep)
        return self.files[name].refresh()

    def json(self, name: str, warnings: list[str]) -> dict[str, Any]:
        return read_json(self.path / name, f"{self.name}/{name}", warnings)

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()


def classify(path: Path) -> str | None:
    """What a directory holds for the viewer, from the files in it (None: nothing of its own)."""
    names = set(os.listdir(path))
    if "results.csv" in names and "cells" in names:
        return "sweep"
    if "results.jsonl" in names:
        return "eval"
    if names & {"metrics.jsonl", "checkpoints.jsonl", "episodes.jsonl"} or {"config.json", "log.txt"} <= names:
        return "run"
    return None


class Store:
    """The sources under ``roots``; the only reader of their files."""

    def __init__(self, roots: Iterable[str | Path]) -> None:
        self.roots: list[Path] = []
        for root in roots:
            path = Path(root).expanduser()
            if not path.is_dir():
                raise MissingFileError(f"{root}: no such directory (give run, eval or sweep directories, or a "
                                       "folder holding them)")
            self.roots.append(path.resolve())
        self._sources: dict[str, Source] = {}
        self._lock = threading.Lock()

    def sources(self) -> list[Source]:
        """Every source under the roots, searched again now (a run that started since appears)."""
        found: dict[str, Source] = {}
        for index, root in enumerate(self.roots):
            for path, kind in _search(root):
                rel = path.relative_to(root).as_posix()
                source_id = f"{index}/{rel}"
                with self._lock:
                    source = self._sources.get(source_id)
                    if source is None or source.kind != kind:
                        name = root.name if rel == "." else f"{root.name}/{rel}"
                        source = self._sources[source_id] = Source(source_id, name, kind, path)
                found[source_id] = source
        return list(found.values())

    def get(self, source_id: str) -> Source | None:
        with self._lock:
            known = self._sources.get(source_id)
        if known is not None and known.path.is_dir():
            return known
        return next((s for s in self.sources() if s.id == source_id), None)

    def file(self, source: Source, relative: str) -> Path | None:
        """The file at ``relative`` inside ``source``'s directory, or None: never a path outside it."""
        parts = PurePosixPath(relative.replace("\\", "/"))
        if not relative or parts.is_absolute() or ".." in parts.parts or "\0" in relative:
            return None
        candidate = (source.path / parts).resolve()
        if not candidate.is_relative_to(source.path) or not candidate.is_file():
            return None
        root = next((r for r in self.roots if source.path.is_relative_to(r)), None)
        return candidate if root is not None and candidate.is_relative_to(root) else None


def _search(root: Path) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    visited = 0
    stack = [(root, 0)]
    while stack and visited < MAX_DIRS:
        path, depth = stack.pop()
        visited += 1
        try:
            kind = classify(path)
            children = sorted((p for p in path.iterdir() if p.is_dir() and not p.is_symlink()), reverse=True)
        except OSError:
            continue
        if kind is not None:
            found.append((path, kind))
        if depth < MAX_DEPTH:
            stack += [(c, depth + 1) for c in children if not c.name.startswith(".") and c.name not in SKIP_DIRS]
    return sorted(found, key=lambda item: item[0].as_posix())
