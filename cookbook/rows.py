"""Rows of a data file or hub dataset, with where each row came from (for one-line errors).

- :func:`read_jsonl`: a ``.jsonl`` (or ``.jsonl.gz``) file, one JSON value per line; a line that is
  not JSON stops with ``path:line: not valid JSON ...``; row ``i`` is at ``path:<its line>``;
- :func:`load_hub`: ``hf:<name>[:<config>]`` at ``split`` through ``datasets.load_dataset``.

Every loop's data module reads files through these, so the same mistake reads the same everywhere.
May import ``cookbook.errors``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cookbook.errors import DataError, first_line

Where = Callable[[int], str]  # row index -> "file:line" / "source row i"


def read_jsonl(path: Path) -> tuple[list[Any], Where]:
    rows, lines = [], []
    with (gzip.open(path, "rt") if path.name.endswith(".gz") else open(path)) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno}); "
                                "each line must be one JSON object") from None
            lines.append(number)
    return rows, lambda i: f"{path}:{lines[i]}"


def load_hub(source: str, split: str) -> tuple[Sequence[Any], Where]:
    """``hf:<name>[:<config>]`` at ``split``; a dataset that cannot be loaded is a ``DataError``."""
    import datasets

    name, _, config = source.removeprefix("hf:").partition(":")
    try:
        rows = datasets.load_dataset(name, config or None, split=split)
    except (OSError, ValueError) as exc:  # not on the hub or in the cache, hub unreachable, unknown split
        raise DataError(f"{source}: cannot load this hub dataset: {first_line(str(exc))}") from exc
    return rows, lambda i: f"{source} row {i}"
