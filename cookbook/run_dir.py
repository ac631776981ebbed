"""The run directory: everything a training run writes, and how a rerun picks it up.

Files under ``log_path``:

- ``config.json``: the run's configuration (what makes two runs "the same run");
- ``metrics.jsonl``: one JSON object per step (``step`` plus metric values);
- ``checkpoints.jsonl``: one record per checkpoint (``name``, ``step`` = steps completed,
  ``state_path``, ``sampler_path``, ``final``);
- ``log.txt``: the human-readable log;
- ``summary.json``: a recipe's numbers before and after (``cookbook.run.RunResult.write_summary``).

Rerunning with the same ``log_path`` follows ``if_exists``: ``resume`` (default) continues from the
last checkpoint of the same configuration, ``overwrite`` deletes the directory and starts over,
``refuse`` stops with an error if the directory already holds a run.

A run directory survives a crash at any byte: ``config.json`` is written atomically (a temporary
file renamed over it); the JSONL files are append-only, and a last line cut off by a crash is
dropped with a warning when the directory is opened again (any other bad line is an error naming
``file:line``); a ``config.json`` that is empty or cut off anyway (written by an older version) is
replaced with a warning. Checkpoints that cannot be loaded are dropped by ``cookbook.checkpointing``
(:meth:`RunDir.drop_checkpoint`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cookbook.errors import ConfigError, UserError

IfExists = Literal["resume", "overwrite", "refuse"]
IF_EXISTS: tuple[str, ...] = ("resume", "overwrite", "refuse")

log = logging.getLogger("cookbook.run")

# Config keys that do not change what a run computes, so a resume may differ in them.
NON_IDENTITY_KEYS = frozenset({"log_path", "if_exists", "wandb_project", "wandb_name", "progress"})


class RunDirError(UserError, RuntimeError):
    """The log directory holds a run that this configuration may not continue."""


@dataclass(frozen=True)
class CheckpointRecord:
    name: str
    step: int
    state_path: str | None
    sampler_path: str | None
    final: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(name=self.name, step=self.step, state_path=self.state_path, sampler_path=self.sampler_path,
                    final=self.final)


class RunDir:
    def __init__(self, path: str | Path, config: dict[str, Any], if_exists: IfExists = "resume") -> None:
        if if_exists not in IF_EXISTS:
            raise ConfigError(f"if_exists must be one of {', '.join(IF_EXISTS)}, got {if_exists!r}")
        self.path = Path(path)
        self.config = config
        warnings: list[str] = []
        try:
            existing = self.path / "config.json"
            if existing.exists():
                if if_exists == "overwrite":
                    shutil.rmtree(self.path)
                elif if_exists == "refuse":
                    raise RunDirError(f"{self.path} already holds a run; pass if_exists=resume or overwrite, "
                                      "or choose another log_path")
                else:
                    self._check_same_run(existing, warnings)
            self.path.mkdir(parents=True, exist_ok=True)
            for leftover in self.path.glob(f".*{_TMP_SUFFIX}"):  # a write a crash interrupted
                leftover.unlink(missing_ok=True)
            _write_atomic(self.path / "config.json", json.dumps(config, indent=2, sort_keys=True, default=str))
            for name in JSONL_FILES:
                warnings += _repair_jsonl(self.path / name)
        except OSError as exc:  # log_path is a file, lies under one, or cannot be written
            raise RunDirError(f"log_path {self.path}: cannot use it as a run directory "
                              f"({exc.strerror or exc}: {exc.filename or self.path})") from None
        self.logger = _file_logger(self.path / "log.txt")
        for warning in warnings:
            self.warn(warning)

    def warn(self, message: str) -> None:
        """A repair the run made to its directory: on stderr and in ``log.txt``."""
        log.warning("%s", message)
        self.logger.warning("%s", message)

    def _check_same_run(self, existing: Path, warnings: list[str]) -> None:
        try:
            old = json.loads(existing.read_text())
        except (ValueError, UnicodeDecodeError):
            warnings.append(f"{existing} was empty or cut off (a crash while it was written); "
                            "replaced with this run's configuration")
            return
        if _identity(old) != _identity(self.config):
            changed = sorted(k for k in set(_identity(old)) | set(_identity(self.config))
                             if _identity(old).get(k) != _identity(self.config).get(k))
            raise RunDirError(
                f"{self.path} holds a run with a different configuration (differs in: "
                f"{', '.join(changed)}); pass if_exists=overwrite to replace it, or choose another log_path")

    # --- checkpoints ------------------------------------------------------------------
    def checkpoints(self) -> list[CheckpointRecord]:
        return [CheckpointRecord(**row) for row in _read_jsonl(self.path / "checkpoints.jsonl")]

    def drop_checkpoint(self, record: CheckpointRecord, reason: str) -> None:
        """Forget a checkpoint that cannot be loaded (so the one before it is used), with a warning."""
        kept = [r for r in self.checkpoints() if r != record]
        _write_atomic(self.path / "checkpoints.jsonl", "".join(json.dumps(r.to_json()) + "\n" for r in kept))
        self.warn(f"checkpoint {record.name} (step {record.step}, {record.state_path or record.sampler_path}) "
                  f"cannot be loaded ({reason}); using the one before it")

    def last_checkpoint(self) -> CheckpointRecord | None:
        records = [r for r in self.checkpoints() if r.state_path]
        return records[-1] if records else None

    def is_finished(self) -> bool:
        return any(r.final for r in self.checkpoints())

    def record_checkpoint(self, record: CheckpointRecord) -> None:
        with open(self.path / "checkpoints.jsonl", "a") as f:
            f.write(json.dumps(record.to_json()) + "\n")
        self.logger.info("checkpoint %s at step %d: %s", record.name, record.step,
                         record.state_path or record.sampler_path)

    # --- metrics ----------------------------------------------------------------------
    def metrics(self) -> list[dict[str, Any]]:
        return _read_jsonl(self.path / "metrics.jsonl")

    def truncate_metrics(self, first_step_to_drop: int) -> None:
        """Drop metrics of steps that a resume will run again (so history has no duplicates)."""
        kept = [m for m in self.metrics() if m.get("step", -1) < first_step_to_drop]
        _write_atomic(self.path / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in kept))

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


JSONL_FILES = ("checkpoints.jsonl", "metrics.jsonl")
_TMP_SUFFIX = ".tmp"


def _write_atomic(file: Path, text: str) -> None:
    """``text`` as ``file``, all or nothing: a crash leaves the old file or the new one, never half."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}{_TMP_SUFFIX}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, file)


def _read_jsonl(file: Path) -> list[dict[str, Any]]:
    """The rows of an append-only JSONL file; a bad line is an error naming ``file:line`` (a line cut
    off by a crash was already dropped when the directory was opened: :func:`_repair_jsonl`)."""
    if not file.exists():
        return []
    rows = []
    for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            raise RunDirError(f"{file}:{number}: not a JSON object; this file is written by the run only: "
                              "remove the line (or pass if_exists=overwrite) to go on")
        rows.append(row)
    return rows


def _repair_jsonl(file: Path) -> list[str]:
    """Drop a last line that a crash cut off (no newline and not a JSON object); the warnings to show.
    Rows are appended in one write each, so only the last line can be incomplete."""
    if not file.exists():
        return []
    data = file.read_bytes()
    head, newline, tail = data.rpartition(b"\n")
    if not tail:  # empty, or ends with a newline: nothing was cut off
        return []
    try:
        complete = isinstance(json.loads(tail), dict)
    except (ValueError, UnicodeDecodeError):
        complete = False
    if complete:  # the row made it, only its newline did not
        _write_atomic(file, (data + b"\n").decode(errors="replace"))
        return []
    _write_atomic(file, (head + newline).decode(errors="replace"))
    return [f"{file}: dropped its last line, cut off by a crash ({len(tail)} bytes)"]


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """The keys that decide what a run computes. A key set to None counts as absent, also inside a
    section (``data.mix``), so a run written before an option (default None) existed still resumes
    with it unset."""
    normalised = json.loads(json.dumps(config, sort_keys=True, default=str))
    return {k: _without_none(v) for k, v in normalised.items() if k not in NON_IDENTITY_KEYS and v is not None}


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def _file_logger(file: Path) -> logging.Logger:
    logger = logging.getLogger(f"cookbook.run.{file.parent.resolve()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handler = logging.FileHandler(file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger
