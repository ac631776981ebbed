"""Evaluations run by another harness (Inspect AI, lm-evaluation-harness) through the eval runner.

``get_benchmark("inspect:<task>")`` / ``get_benchmark("lm_eval:<task>")`` return an
:class:`ExternalEval`: it stands where a benchmark stands (``cookbook eval``, sweeps, eval hooks),
and ``evals.runner.evaluate`` hands it the responder, so the harness samples from the same
sampling client and renderer as our own benchmarks do. It writes the runner's output directory
(``config.json``, ``results.jsonl`` with one row per sample, ``summary.json`` with accuracy,
standard error and pass@k) plus the harness's own logs, and a rerun with the same configuration
reuses a finished directory.

The harnesses are imported only when such an evaluation runs (``evals.inspect_eval``,
``evals.lm_harness``).

May import ``cookbook`` and ``evals.runner``'s helpers (lazily).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from cookbook.errors import ConfigError

if TYPE_CHECKING:
    from evals.responders import Responder
    from evals.runner import EvalResult, EvalSettings

PREFIXES = ("inspect", "lm_eval")


class ExternalEval(ABC):
    """A task of another harness, named ``<harness>:<task>``."""

    harness: ClassVar[str] = ""
    temperature: ClassVar[float | None] = None  # None: the task's own (or the harness's) default
    max_tokens: ClassVar[int | None] = None

    def __init__(self, task: str) -> None:
        if not task.strip():
            raise ConfigError(f"{self.harness}: name a task after the colon, e.g. {self.harness}:<task>")
        self.task = task.strip()
        self.name = f"{self.harness}:{self.task}"
        self.instruction = ""

    def identity(self) -> dict[str, Any]:
        return {"benchmark": self.name}

    @abstractmethod
    async def evaluate_async(self, responder: Responder, settings: EvalSettings, *, output_dir: Path | None,
                             target: dict[str, Any], overwrite: bool, progress: bool) -> EvalResult:
        """Run the task (``settings`` resolved: ``n``, ``limit``, ``temperature``, ``max_tokens``, ``seed``)."""


def external_eval(spec: str) -> ExternalEval | None:
    """The external evaluation a spec names (``inspect:...``, ``lm_eval:...``), or None."""
    prefix, sep, task = spec.strip().partition(":")
    if not sep or prefix not in PREFIXES:
        return None
    if prefix == "inspect":
        from evals.inspect_eval import InspectEval

        return InspectEval(task)
    from evals.lm_harness import LMEval

    return LMEval(task)


def reuse(output_dir: Path | None, config: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """The summary of ``output_dir`` when it holds a finished run of exactly ``config``; refuses a
    directory of another configuration unless ``overwrite`` (as ``evals.runner.ResultStore`` does)."""
    from evals.runner import CONFIG_FILE, RESULTS_FILE, SUMMARY_FILE, EvalDirError

    if output_dir is None:
        return None
    existing = output_dir / CONFIG_FILE
    if existing.is_file() and not overwrite:
        old = json.loads(existing.read_text())
        if old != config:
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise EvalDirError(f"{output_dir} holds results of a different evaluation (differs in: "
                               f"{', '.join(changed)}); pass overwrite=true to replace them, or choose another "
                               "output_dir")
        summary = output_dir / SUMMARY_FILE
        if summary.is_file() and (output_dir / RESULTS_FILE).is_file():
            return json.loads(summary.read_text())
    return None


def write_results(output_dir: Path | None, config: dict[str, Any], rows: list[dict[str, Any]],
                  summary: dict[str, Any]) -> None:
    from evals.runner import CONFIG_FILE, RESULTS_FILE, SUMMARY_FILE

    if output_dir is None:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    (output_dir / RESULTS_FILE).write_text("".join(json.dumps(row, default=str) + "\n" for row in rows))
    (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
