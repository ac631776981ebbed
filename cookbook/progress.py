"""A rich progress display for long loops: step, a few live values (loss, tokens/s, ...) and ETA on one line."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class StepProgress:
    """A context manager over ``total`` steps (``start`` already done); :meth:`update` moves it on.

    ``fields`` maps a value's name to its column format (``{}`` is where the value goes, e.g.
    ``{"loss": "loss {}"}``); values are passed to :meth:`update` by name, already formatted as text.
    """

    def __init__(self, total: int, start: int = 0, description: str = "train", enabled: bool = True,
                 console: Console | None = None, fields: Mapping[str, str] | None = None) -> None:
        self.enabled = enabled
        self.fields = dict(fields or {})
        columns = [TextColumn(fmt.replace("{}", f"{{task.fields[{name}]}}")) for name, fmt in self.fields.items()]
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), *columns,
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not enabled, transient=False,
        )
        blank: dict[str, Any] = {name: "-" for name in self.fields}
        self._task = self._progress.add_task(description, total=total, completed=start, **blank)

    def __enter__(self) -> StepProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def update(self, completed: int, **values: str) -> None:
        shown: dict[str, Any] = values
        self._progress.update(self._task, completed=completed, **shown)
