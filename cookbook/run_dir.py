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
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cookbook.errors import ConfigError, UserError

IfExists = Literal["resume", "overwrite", "refuse"]
IF_EXISTS: tuple[str, ...] = ("resume", "overwrite", "refuse")

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
        existing = self.path / "config.json"
        if existing.exists():
            if if_exists == "overwrite":
                shutil.rmtree(self.path)
            elif if_exists == "refuse":
                raise RunDirError(f"{self.path} already holds a run; pass if_exists=resume or overwrite, "
                                  "or choose another log_path")
            else:
                old = json.loads(existing.read_text())
                if _identity(old) != _identity(config):
                    changed = sorted(k for k in set(_identity(old)) | set(_identity(config))
                                     if _identity(old).get(k) != _identity(config).get(k))
                    raise RunDirError(
                        f"{self.path} holds a run with a different configuration (differs in: "
                        f"{', '.join(changed)}); pass if_exists=overwrite to replace it, or choose another log_path")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
        self.logger = _file_logger(self.path / "log.txt")

    # --- checkpoints ------------------------------------------------------------------
    def checkpoints(self) -> list[CheckpointRecord]:
        file = self.path / "checkpoints.jsonl"
        if not file.exists():
            return []
        return [CheckpointRecord(**json.loads(line)) for line in file.read_text().splitlines() if line.strip()]

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
        file = self.path / "metrics.jsonl"
        if not file.exists():
            return []
        return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, first_step_to_drop: int) -> None:
        """Drop metrics of steps that a resume will run again (so history has no duplicates)."""
        kept = [m for m in self.metrics() if m.get("step", -1) < first_step_to_drop]
        (self.path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in kept))

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


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
