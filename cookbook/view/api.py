"""The viewer's data: what each JSON endpoint answers, as plain dicts (the server and the export share it).

Every answer is JSON-safe (NaN and infinities become null) and carries the ``warnings`` of what it
read: malformed lines skipped, incomplete last lines held back, unreadable JSON files ignored.

May import ``cookbook.view.store``, ``cookbook.view.datums`` and ``cookbook.errors``.
"""

from __future__ import annotations

from typing import Any

from cookbook.errors import UserError
from cookbook.view import datums as datum_view
from cookbook.view.store import Source, Store, plain, read_csv

RUN_FILES = ("metrics.jsonl", "checkpoints.jsonl", "episodes.jsonl")
LOG_TAIL_LINES = 40


class NotFound(LookupError):
    """No such source, step or file (the server answers 404)."""


def _episode_summary(row: dict[str, Any]) -> dict[str, Any]:
    """What the step list keeps of one ``episodes.jsonl`` line (the full line is read again on demand)."""
    rewards = [e.get("reward") for g in _list(row.get("groups")) for e in _list(_dict(g).get("episodes"))]
    numbers = [r for r in rewards if isinstance(r, int | float)]
    return {"step": row.get("step"), "groups": len(_list(row.get("groups"))), "episodes": len(rewards),
            "reward_mean": sum(numbers) / len(numbers) if numbers else None}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class ViewData:
    """Answers of the endpoints over a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def source(self, source_id: str, kind: str | None = None) -> Source:
        source = self.store.get(source_id)
        if source is None or (kind is not None and source.kind != kind):
            raise NotFound(f"no {kind or 'source'} {source_id!r}")
        return source

    # --- the list of sources, with every warning --------------------------------------
    def index(self) -> dict[str, Any]:
        out = []
        for source in self.store.sources():
            warnings: list[str] = []
            entry: dict[str, Any] = {"id": source.id, "name": source.name, "kind": source.kind}
            if source.kind == "run":
                config = source.json("config.json", warnings)
                source.json("summary.json", warnings)
                for name in RUN_FILES:
                    if source.has(name):
                        warnings += self._jsonl(source, name).warnings
                metrics = self._jsonl(source, "metrics.jsonl").items if source.has("metrics.jsonl") else []
                entry.update(rows=len(metrics), episodes=source.has("episodes.jsonl"),
                             datums=datum_view.data_kind(config), base_model=config.get("base_model"),
                             last_step=metrics[-1].get("step") if metrics else None)
            elif source.kind == "eval":
                summary = source.json("summary.json", warnings)
                source.json("config.json", warnings)
                warnings += source.jsonl("results.jsonl").warnings
                entry.update(summary=plain(summary), in_sweep="/cells/" in f"/{source.id.partition('/')[2]}/")
            else:
                self._sweep_rows(source, warnings)
            entry["warnings"] = warnings
            out.append(entry)
        return {"roots": [str(r) for r in self.store.roots], "sources": out}

    def _jsonl(self, source: Source, name: str):
        return source.jsonl(name, _episode_summary if name == "episodes.jsonl" else None)

    # --- runs ---------------------------------------------------------------------------
    def metrics(self, source_id: str, since: int = 0) -> dict[str, Any]:
        source = self.source(source_id, "run")
        file = self._jsonl(source, "metrics.jsonl")
        rows = file.items
        since = max(0, since)
        return plain({"id": source.id, "rows": rows[since:], "total": len(rows), "since": since,
                      "warnings": file.warnings})

    def run(self, source_id: str) -> dict[str, Any]:
        source = self.source(source_id, "run")
        warnings: list[str] = []
        config = source.json("config.json", warnings)
        summary = source.json("summary.json", warnings)
        checkpoints = self._jsonl(source, "checkpoints.jsonl")
        log = self.store.file(source, "log.txt")
        tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:] if log else []
        files = sorted(p.name for p in source.path.iterdir() if p.is_file())
        return plain({"id": source.id, "name": source.name, "config": config, "summary": summary,
                      "checkpoints": checkpoints.items, "log_tail": tail, "files": files,
                      "warnings": warnings + checkpoints.warnings})

    def episodes(self, source_id: str) -> dict[str, Any]:
        """The logged steps (the last record of a step that a resume ran twice)."""
        source = self.source(source_id, "run")
        file = self._jsonl(source, "episodes.jsonl")
        latest: dict[Any, dict[str, Any]] = {}
        for index, item in enumerate(file.items):
            latest[item["step"]] = {**item, "line": index}
        steps = sorted(latest.values(), key=lambda s: (not isinstance(s["step"], int), s["step"]))
        return plain({"id": source.id, "steps": steps, "warnings": file.warnings})

    def episode_step(self, source_id: str, step: int) -> dict[str, Any]:
        source = self.source(source_id, "run")
        file = self._jsonl(source, "episodes.jsonl")
        line = max((i for i, item in enumerate(file.items) if item["step"] == step), default=None)
        record = file.read_line(line) if line is not None else None
        if record is None:
            raise NotFound(f"no episodes of step {step} in {source.name}")
        return plain({"id": source.id, **record, "warnings": file.warnings})

    def datums(self, source_id: str, offset: int = 0, count: int = 10, score: str | None = None) -> dict[str, Any]:
        source = self.source(source_id, "run")
        warnings: list[str] = []
        config = source.json("config.json", warnings)
        checkpoints = self._jsonl(source, "checkpoints.jsonl")
        try:
            out = datum_view.datums(config, checkpoints.items, offset=offset, count=count, score=score)
        except UserError as exc:  # data or model the viewer cannot load: say so on the page
            out = {"kind": datum_view.data_kind(config), "error": str(exc)}
        return plain({"id": source.id, **out, "checkpoints": [c.get("name") for c in checkpoints.items],
                      "warnings": warnings + checkpoints.warnings})

    # --- evals and sweeps ---------------------------------------------------------------
    def eval(self, source_id: str) -> dict[str, Any]:
        source = self.source(source_id, "eval")
        warnings: list[str] = []
        results = source.jsonl("results.jsonl")
        return plain({"id": source.id, "name": source.name, "config": source.json("config.json", warnings),
                      "summary": source.json("summary.json", warnings), "samples": results.items,
                      "warnings": warnings + results.warnings})

    def sweep(self, source_id: str) -> dict[str, Any]:
        source = self.source(source_id, "sweep")
        warnings: list[str] = []
        rows = self._sweep_rows(source, warnings)
        fixed = {"run", "checkpoint", "step", "path"}
        benchmarks = [k for k in (rows[0] if rows else {}) if k not in fixed and not k.endswith("_stderr")]
        cells: dict[str, str] = {}  # "<checkpoint path>|<benchmark>" -> eval source id
        for other in self.store.sources():
            if other.kind == "eval" and other.path.is_relative_to(source.path / "cells"):
                config = other.json("config.json", [])
                cells[f"{config.get('checkpoint')}|{config.get('benchmark')}"] = other.id
        return plain({"id": source.id, "name": source.name, "rows": rows, "benchmarks": benchmarks, "cells": cells,
                      "plot": "results.png" if source.has("results.png") else None, "warnings": warnings})

    @staticmethod
    def _sweep_rows(source: Source, warnings: list[str]) -> list[dict[str, Any]]:
        return read_csv(source.path / "results.csv", f"{source.name}/results.csv", warnings)
