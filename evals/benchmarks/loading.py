"""Rows of a benchmark's data, from a local file or the Hugging Face hub.

A source is one string:

- a local ``.jsonl`` (also ``.jsonl.gz``), ``.json`` (a list of rows) or ``.parquet`` file;
- ``hf:<name>[:<config>]`` or a bare hub id such as ``openai/gsm8k`` that is not a local path:
  ``datasets.load_dataset(name, config, split=split)``.

A benchmark without an explicit source looks for its file (e.g. ``gsm8k/test.jsonl``) under
``$COOKBOOK_EVAL_DATA`` (a folder laid out like ``../shared/data``) and falls back to its hub id.
Rows are read once per (source, split) and file version, then kept in memory.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from pathlib import Path
from typing import Any

from cookbook.errors import DataError, MissingFileError, first_line

DATA_DIR_ENV = "COOKBOOK_EVAL_DATA"
LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def default_source(local_file: str | None, hub: str, data_dir: str | None = None) -> str:
    """``<data_dir>/<local_file>`` (default ``data_dir``: ``$COOKBOOK_EVAL_DATA``) when it exists, else the hub
    source. A ``data_dir`` given explicitly must hold the file."""
    if data_dir and local_file:
        path = Path(data_dir).expanduser() / local_file
        if not path.is_file():
            raise MissingFileError(f"data_dir {data_dir}: no {local_file} in it (expected <data_dir>/{local_file})")
        return str(path)
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir and local_file:
        path = Path(data_dir).expanduser() / local_file
        if path.is_file():
            return str(path)
    return hub


def is_local(source: str) -> bool:
    return not source.startswith("hf:") and (Path(source).expanduser().exists() or source.endswith(LOCAL_SUFFIXES))


def load_rows(source: str, split: str = "test") -> list[dict[str, Any]]:
    """Every row of ``source`` (``split`` applies to hub datasets), as dicts, in order."""
    if is_local(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise MissingFileError(f"{source}: no such file (a benchmark source is a .jsonl/.json/.parquet file or "
                                   "a Hugging Face dataset id)")
        return list(_load_file(str(path.resolve()), path.stat().st_mtime_ns))
    return list(_load_hub(source, split))


@functools.lru_cache(maxsize=16)
def _load_file(path: str, _mtime_ns: int) -> tuple[dict[str, Any], ...]:
    if path.endswith(".parquet"):
        import datasets

        return tuple(datasets.Dataset.from_parquet(path))
    if path.endswith(".json"):
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: a .json benchmark file must hold a list of rows")
        return tuple(_checked(row, f"{path} row {i}") for i, row in enumerate(data))
    rows = []
    with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(_checked(json.loads(line), f"{path}:{number}"))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno}); "
                                "each line must be one JSON object") from None
    return tuple(rows)


@functools.lru_cache(maxsize=16)
def _load_hub(source: str, split: str) -> tuple[dict[str, Any], ...]:
    import datasets

    name, _, config = source.removeprefix("hf:").partition(":")
    try:
        return tuple(datasets.load_dataset(name, config or None, split=split))
    except Exception as exc:  # noqa: BLE001 - hub unreachable, unknown dataset or split: all the user's to fix
        raise DataError(f"cannot load the hub dataset {name!r} (split {split!r}): {first_line(str(exc))}; pass "
                        f"source=<file.jsonl>, or set {DATA_DIR_ENV} to a folder of benchmark files") from exc


def _checked(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
    return row


def field(row: dict[str, Any], names: tuple[str, ...], where: str) -> Any:
    """The first of ``names`` that ``row`` has (hub and local copies of a set name fields differently)."""
    for name in names:
        if row.get(name) is not None:
            return row[name]
    raise DataError(f"{where}: row has none of the fields {', '.join(names)}; fields: {', '.join(sorted(row))}")


def number_text(value: Any) -> str:
    """A numeric answer as text: ``27.0`` -> ``"27"``, ``0.5`` -> ``"0.5"``, strings unchanged."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
