"""The one reader of data rows, for every loop and the evals: a file, a saved dataset or a hub dataset.

A source is one string:

- a ``.jsonl`` or ``.jsonl.gz`` file, one JSON object per line;
- a ``.json`` file holding a list of rows, or an object with the list under the split's name;
- a ``.parquet`` file;
- a directory written by ``datasets.Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (a
  ``DatasetDict`` is read at ``split``);
- ``hf:<name>[:<config>]``: a Hugging Face hub dataset at ``split`` (``datasets.load_dataset``).

:func:`read_rows` returns :class:`Rows`: a sequence of dict rows that also says where row ``i`` came
from (``file:line`` for JSONL, ``source row i`` otherwise), so a bad row anywhere is reported the
same way. :func:`iter_rows` streams the same rows as (row, where) pairs without reading a whole
file first (JSONL line by line, Parquet by record batches, hub datasets with ``streaming=True``),
for sources larger than memory or when only the first rows are wanted. Every mistake (a missing
file, a line that is not JSON, a row that is not an object, an unsupported file, a hub dataset that
cannot be loaded) is a one-line :class:`cookbook.errors.UserError`.

``datasets`` (and through it ``pyarrow``) is imported only when a Parquet file, a saved dataset or
a hub dataset is read (``pyarrow`` alone when a Parquet file is streamed), so everything else works
without it. May import ``cookbook.errors``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from cookbook.errors import DataError, MissingFileError, first_line

FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
Where = Callable[[int], str]  # row index -> "file:line" / "source row i"
SOURCES = ("a .jsonl/.jsonl.gz/.json/.parquet file, a directory saved with datasets.save_to_disk, "
           "or hf:<name>[:<config>]")


class Rows(Sequence[dict[str, Any]]):
    """Rows of one source, in order; :meth:`where` names row ``i`` for error messages."""

    def __init__(self, rows: Sequence[dict[str, Any]], where: Where) -> None:
        self._rows, self._where = rows, where

    def where(self, i: int) -> str:
        return self._where(i)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[dict[str, Any]]: ...

    def __getitem__(self, i: int | slice) -> dict[str, Any] | Sequence[dict[str, Any]]:
        if isinstance(i, slice):
            return [self._rows[j] for j in range(*i.indices(len(self)))]
        return self._rows[i]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self._rows[i] for i in range(len(self)))


def read_rows(source: str, split: str = "train") -> Rows:
    """Every row of ``source`` (see the module docstring); ``split`` applies to hub datasets, saved
    ``DatasetDict`` directories and ``.json`` objects keyed by split."""
    if source.startswith("hf:"):
        return _hub(source, split)
    path = Path(source).expanduser()
    if path.is_dir():
        return _saved(path, split)
    if not path.exists():
        raise MissingFileError(f"{source}: no such file or directory (a data source is {SOURCES})")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        return Rows(*read_jsonl(path))
    if name.endswith(".json"):
        return _json(path, split)
    if name.endswith(".parquet"):
        import datasets

        _require_parquet_magic(path)  # checked here: datasets would log its own error first
        try:
            table = datasets.Dataset.from_parquet(str(path))
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a file that is not parquet
            raise DataError(f"{path}: cannot be read as a parquet file ({first_line(str(exc))})") from None
        return Rows(table, lambda i: f"{path} row {i}")
    raise DataError(f"{path}: unsupported data file; a data source is {SOURCES}")


def _require_parquet_magic(path: Path) -> None:
    """:class:`DataError` unless ``path`` starts and ends with Parquet's ``PAR1`` marker."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(size - 4, 0))
        if size < 12 or head != b"PAR1" or f.read(4) != b"PAR1":
            raise DataError(f"{path}: cannot be read as a parquet file (no PAR1 header and footer)")


def iter_rows(source: str, split: str = "train") -> Iterator[tuple[dict[str, Any], str]]:
    """The rows of ``source`` as :func:`read_rows` gives them, each with where it came from, read lazily:
    JSONL (``.gz`` too) line by line, Parquet a record batch at a time, hub datasets streamed; a
    ``.json`` file or a saved dataset is read as :func:`read_rows` reads it. Errors as in
    :func:`read_rows`, raised when the bad row is reached."""
    if source.startswith("hf:"):
        yield from _hub_stream(source, split)
        return
    path = Path(source).expanduser()
    name = path.name.lower()
    if path.is_file() and name.endswith((".jsonl", ".jsonl.gz")):
        for row, number in _jsonl_rows(path):
            yield row, f"{path}:{number}"
        return
    if path.is_file() and name.endswith(".parquet"):
        import pyarrow.parquet as pq

        _require_parquet_magic(path)

        index = 0
        for batch in pq.ParquetFile(path).iter_batches():
            for row in batch.to_pylist():
                yield row, f"{path} row {index}"
                index += 1
        return
    rows = read_rows(source, split)
    for i, row in enumerate(rows):
        yield row, rows.where(i)


def _hub_stream(source: str, split: str) -> Iterator[tuple[dict[str, Any], str]]:
    import datasets

    name, _, config = source.removeprefix("hf:").partition(":")
    try:
        rows = datasets.load_dataset(name, config or None, split=split, streaming=True)
        for i, row in enumerate(rows):
            yield dict(row), f"{source} row {i}"
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - hub unreachable, unknown dataset or split: all the user's to fix
        raise DataError(f"{source}: cannot stream this hub dataset (split {split!r}): {first_line(str(exc))}") from exc


def read_jsonl(path: str | Path) -> tuple[list[dict[str, Any]], Where]:
    """A ``.jsonl`` / ``.jsonl.gz`` file: (its rows, one JSON object per line with blank lines skipped;
    where row ``i`` is: ``path:<its line>``)."""
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for row, number in _jsonl_rows(Path(path)):
        rows.append(row)
        lines.append(number)
    return rows, lambda i: f"{path}:{lines[i]}"


def _jsonl_rows(path: Path) -> Iterator[tuple[dict[str, Any], int]]:
    """Each row of a ``.jsonl`` / ``.jsonl.gz`` file with its line number, read lazily (blank lines skipped)."""
    try:
        opened = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
        with opened as f:
            for number, raw in enumerate(f, start=1):
                line = _text(raw, f"{path}:{number}")
                if line.strip():
                    yield _object(_parse(line, path, number, "each line must be one JSON object"),
                                  f"{path}:{number}"), number
    except (gzip.BadGzipFile, EOFError, OSError) as exc:
        raise DataError(f"{path}: cannot be read as a {'gzip-compressed ' if path.name.endswith('.gz') else ''}"
                        f"JSONL file ({first_line(str(exc)) or type(exc).__name__})") from None


def _text(raw: bytes, where: str) -> str:
    """A line of a data file as text; a binary file (not UTF-8) is a :class:`DataError` at ``where``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
                        "a data file is JSON lines in UTF-8") from None


def _json(path: Path, split: str) -> Rows:
    data = _parse(_text(path.read_bytes(), str(path)), path, None, "a .json data file holds a list of rows")
    if isinstance(data, dict) and isinstance(data.get(split), list):
        data = data[split]
    if not isinstance(data, list):
        raise DataError(f"{path}: holds neither a list of rows nor a {split!r} key with one (set the split)")
    return Rows([_object(row, f"{path} row {i}") for i, row in enumerate(data)], lambda i: f"{path} row {i}")


def _saved(path: Path, split: str) -> Rows:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: not a dataset saved with datasets.save_to_disk ({first_line(str(exc))})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{path} has splits {sorted(loaded)}, not {split!r}; choose one of them as the split")
        loaded = loaded[split]
    return Rows(loaded, lambda i: f"{path} row {i}")


def _hub(source: str, split: str) -> Rows:
    import datasets

    name, _, config = source.removeprefix("hf:").partition(":")
    try:
        rows = datasets.load_dataset(name, config or None, split=split)
    except Exception as exc:  # noqa: BLE001 - hub unreachable, unknown dataset or split: all the user's to fix
        raise DataError(f"{source}: cannot load this hub dataset (split {split!r}): {first_line(str(exc))}") from exc
    return Rows(rows, lambda i: f"{source} row {i}")


def _parse(text: str, path: Path, line: int | None, hint: str) -> Any:
    """``text`` (line ``line`` of ``path``, or all of it) as JSON; a :class:`DataError` at ``path:line``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{line or exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}); "
                        f"{hint}") from None


def _object(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
    return row
