"""Rows of a benchmark's data, from a local file or the Hugging Face hub, through ``cookbook.rows``.

A source is one string: any source of :func:`cookbook.rows.read_rows` (a ``.jsonl`` /
``.jsonl.gz`` / ``.json`` / ``.parquet`` file, a ``save_to_disk`` directory, ``hf:<name>[:<config>]``),
or a bare hub id such as ``openai/gsm8k`` that is not a local path.

A benchmark without an explicit source looks for its file (e.g. ``gsm8k/test.jsonl``) under
``$COOKBOOK_EVAL_DATA`` (a folder laid out like ``../shared/data``) and falls back to its hub id.
Rows are read once per (source, split) and file version, then kept in memory.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from cookbook.errors import DataError, MissingFileError
from cookbook.rows import FILE_SUFFIXES, Rows, read_rows

DATA_DIR_ENV = "COOKBOOK_EVAL_DATA"


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
    return not source.startswith("hf:") and (Path(source).expanduser().exists() or source.endswith(FILE_SUFFIXES))


def load_rows(source: str, split: str = "test") -> Rows:
    """Every row of ``source`` (``split`` applies to hub datasets), in order, read by
    :func:`cookbook.rows.read_rows` (a bare hub id is read as ``hf:<id>``); each file version is read once."""
    if not is_local(source):
        return _load_hub("hf:" + source.removeprefix("hf:"), split)
    path = Path(source).expanduser()
    if not path.exists():
        raise MissingFileError(f"{source}: no such file (a benchmark source is a .jsonl/.json/.parquet file or "
                               "a Hugging Face dataset id)")
    return _load_file(str(path.resolve()), split, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _load_file(path: str, split: str, _mtime_ns: int) -> Rows:
    rows = read_rows(path, split)
    return Rows(list(rows), rows.where)


@functools.lru_cache(maxsize=16)
def _load_hub(source: str, split: str) -> Rows:
    try:
        rows = read_rows(source, split)
    except DataError as exc:
        raise DataError(f"{exc}; pass source=<file.jsonl>, or set {DATA_DIR_ENV} to a folder of benchmark "
                        "files") from exc
    return Rows(list(rows), rows.where)


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
