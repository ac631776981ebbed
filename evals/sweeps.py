"""Sweeps: checkpoints x benchmarks -> a results table (Markdown, CSV) and a plot of score against step.

    cookbook sweep runs=runs/qs1,runs/qs2 benchmarks=addition,gsm8k limit=50 output_dir=runs/sweep
    cookbook sweep checkpoints=local://<run>/weights/step_000100,local://<run>/weights/step_000200 benchmarks=addition

Targets are every checkpoint recorded in each run directory's ``checkpoints.jsonl`` (its sampler
weights when saved, else its state), the checkpoints given by path, and with ``include_base`` the
base model as step 0. Each (target, benchmark) cell is an eval output directory under
``output_dir/cells/<run>/<checkpoint>/<benchmark>/`` (``evals.runner``): a cell whose summary is
complete for the same settings is reused, a cell cut short resumes, the rest are computed, the
benchmarks of one checkpoint together so the backend batches their requests. Written to
``output_dir``: ``results.md``, ``results.csv`` and ``results.png``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chz
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cookbook.backend import BackendName, service_client
from cookbook.completers import known_renderer, renderer_for, sampling_client
from cookbook.errors import ConfigError, MissingFileError
from cookbook.primitives import max_context_length
from cookbook.recipe_cli import run_recipe
from cookbook.run_dir import CheckpointRecord
from evals.benchmarks import Benchmark, get_benchmark, known_benchmark
from evals.external import ExternalEval
from evals.plots import plot_sweep
from evals.responders import SamplingClientResponder
from evals.run import slug
from evals.runner import CONFIG_FILE, SUMMARY_FILE, EvalResult, EvalSettings, eval_config, evaluate_async, run_sync


@chz.chz
class SweepConfig:
    benchmarks: str = chz.field(validator=known_benchmark)  # comma-separated benchmark names
    runs: str = ""  # comma-separated run directories: every checkpoint in their checkpoints.jsonl
    checkpoints: str = ""  # comma-separated checkpoint paths
    include_base: bool = False  # also the base model, as step 0 of each run
    model: str | None = None  # base model (default: each run's config.json base_model, else tiny)
    renderer: str | None = chz.field(default=None, validator=known_renderer)  # None: each run's, else recommended
    backend: BackendName = "local"  # local or tinker
    base_url: str | None = None
    data_dir: str | None = None  # benchmark files laid out like ../shared/data (default $COOKBOOK_EVAL_DATA)
    limit: int | None = None
    n: int = 1
    temperature: float | None = None
    max_tokens: int | None = None
    concurrency: int = 64
    seed: int | None = None
    output_dir: str = "runs/sweep"
    progress: bool = True


@dataclass(frozen=True)
class Target:
    """One set of weights to evaluate."""

    run: str  # label of its run (run directory name)
    name: str  # checkpoint name ("step_000300", "final", "base")
    step: int | None  # training steps done (None when unknown)
    path: str | None  # checkpoint path; None: the base model
    model: str  # base model
    renderer: str | None

    def cell_dir(self, root: Path, benchmark: str) -> Path:
        return root / "cells" / slug(self.run) / slug(self.name) / slug(benchmark)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "checkpoint": self.path, "renderer": self.renderer}


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def run_targets(run_dir: str, config: SweepConfig, label: str | None = None) -> list[Target]:
    """The checkpoints of a run directory (one per step), from ``checkpoints.jsonl``; ``label`` names the
    run in the table (default: the directory's name)."""
    path = Path(run_dir)
    file = path / "checkpoints.jsonl"
    if not file.is_file():
        raise MissingFileError(f"{run_dir}: no checkpoints.jsonl (is it a run directory?)")
    run_config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    model = config.model or run_config.get("base_model") or "tiny"
    renderer = config.renderer or run_config.get("renderer")
    label = label or path.resolve().name
    targets = [Target(label, "base", 0, None, model, renderer)] if config.include_base else []
    by_step: dict[int, CheckpointRecord] = {}
    for line in file.read_text().splitlines():
        if line.strip():
            record = CheckpointRecord(**json.loads(line))
            if record.sampler_path or record.state_path:
                by_step[record.step] = record  # a later record of the same step (final) wins
    for step, record in sorted(by_step.items()):
        targets.append(Target(label, record.name, step, record.sampler_path or record.state_path, model, renderer))
    return targets


def checkpoint_target(path: str, config: SweepConfig) -> Target:
    """A checkpoint given by path: its run is the path's run folder, its step the ``step_<N>`` in its name."""
    parts = [p for p in re.split(r"/+", path.split("://", 1)[-1]) if p]
    name = parts[-1] if parts else path
    step = re.search(r"(\d+)$", name)
    return Target(parts[0] if len(parts) > 1 else "checkpoints", name, int(step.group(1)) if step else None, path,
                  config.model or "tiny", config.renderer)


def targets_of(config: SweepConfig) -> list[Target]:
    runs = _split(config.runs)
    names = [Path(run).resolve().name for run in runs]
    # runs that share a folder name (a/qs, b/qs) are told apart by their path
    targets = [t for run, name in zip(runs, names)
               for t in run_targets(run, config, name if names.count(name) == 1 else str(Path(run)))]
    targets += [checkpoint_target(p, config) for p in _split(config.checkpoints)]
    if not targets:
        raise ConfigError("nothing to evaluate: give runs=DIR,... and/or checkpoints=PATH,...")
    return list(dict.fromkeys(targets))


def cell_config(cell: Path) -> dict[str, Any] | None:
    file = cell / CONFIG_FILE
    return json.loads(file.read_text()) if file.is_file() else None


def finished_summary(cell: Path, expected_config: dict[str, Any], expected_examples: int | None
                     ) -> dict[str, Any] | None:
    """The cell's summary when it was computed with this configuration on ``expected_examples`` problems
    (None: as many as it had, for tasks of other harnesses)."""
    if not (cell / SUMMARY_FILE).is_file() or cell_config(cell) != expected_config:
        return None
    summary = json.loads((cell / SUMMARY_FILE).read_text())
    return summary if expected_examples is None or summary.get("examples") == expected_examples else None


def sweep(config: SweepConfig) -> list[dict[str, Any]]:
    """Evaluate every missing cell, then write the table and the plot; returns one record per cell."""
    names = _split(config.benchmarks)
    if not names:
        raise ConfigError("give benchmarks=name,...")
    benchmarks = {name: get_benchmark(name, data_dir=config.data_dir) for name in names}
    settings_of = {name: EvalSettings(n=config.n, limit=config.limit, temperature=config.temperature,
                                      max_tokens=config.max_tokens, concurrency=config.concurrency,
                                      seed=config.seed).resolve(b) for name, b in benchmarks.items()}
    targets = targets_of(config)
    root = Path(config.output_dir)
    records: dict[tuple[Target, str], dict[str, Any]] = {}
    todo: dict[Target, list[str]] = {}
    for target in targets:
        for name, benchmark in benchmarks.items():
            expected = None if isinstance(benchmark, ExternalEval) else len(benchmark.examples(config.limit))
            summary = finished_summary(target.cell_dir(root, name),
                                       eval_config(benchmark, settings_of[name], target.describe()), expected)
            if summary is None:
                todo.setdefault(target, []).append(name)
            else:
                records[target, name] = summary
    reused = len(records)
    service = service_client(config.backend, **({"base_url": config.base_url} if config.base_url else {})) \
        if todo else None
    columns = [TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
               TimeElapsedColumn()]
    with Progress(*columns, disable=not config.progress) as progress:
        bar = progress.add_task("", total=len(targets) * len(names), completed=reused)
        for target, missing in todo.items():
            progress.update(bar, description=f"{target.name}: {', '.join(missing)}")
            results = run_sync(_evaluate_target(target, {m: benchmarks[m] for m in missing}, settings_of, service,
                                                root))
            for name, result in zip(missing, results):
                records[target, name] = result.summary
                progress.advance(bar)
    rows = [{"run": t.run, "checkpoint": t.name, "step": t.step, "path": t.path, "benchmark": name,
             **{k: records[t, name].get(k) for k in ("accuracy", "stderr", "examples")}}
            for t in targets for name in names]
    write_outputs(rows, names, root)
    print(f"sweep: {len(targets)} checkpoints x {len(names)} benchmarks; {reused} cells reused, "
          f"{len(rows) - reused} computed; table {root / 'results.md'}, plot {root / 'results.png'}")
    return rows


async def _evaluate_target(target: Target, benchmarks: Mapping[str, Benchmark], settings_of: dict[str, EvalSettings],
                           service: Any, root: Path) -> list[EvalResult]:
    """The given benchmarks (by spec) on one checkpoint, all at once (their requests are batched together)."""
    renderer = renderer_for(target.model, target.renderer)
    responder = SamplingClientResponder(sampling_client(service, target.model, target.path), renderer,
                                        context_length=max_context_length(service, target.model))

    def run(spec: str, benchmark: Benchmark) -> Any:
        cell, settings = target.cell_dir(root, spec), settings_of[spec]
        # a cell computed with other settings is recomputed: the sweep's settings decide
        stale = cell_config(cell) not in (None, eval_config(benchmark, settings, target.describe()))
        return evaluate_async(benchmark, responder, settings, output_dir=cell, target=target.describe(),
                              overwrite=stale, progress=False)
    return list(await asyncio.gather(*(run(spec, b) for spec, b in benchmarks.items())))


def _fmt(value: float | None, stderr: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ± {stderr:.3f}" if stderr is not None else f"{value:.3f}"


def write_outputs(rows: Sequence[dict[str, Any]], benchmarks: Sequence[str], root: Path) -> None:
    """``results.md`` and ``results.csv`` (one row per checkpoint, a column per benchmark) and ``results.png``."""
    root.mkdir(parents=True, exist_ok=True)
    table: dict[tuple[str, str, int | None, str | None], dict[str, dict[str, Any]]] = {}
    for row in rows:
        table.setdefault((row["run"], row["checkpoint"], row["step"], row["path"]), {})[row["benchmark"]] = row
    lines = ["| run | checkpoint | step | " + " | ".join(benchmarks) + " |",
             "|---|---|---:|" + "---:|" * len(benchmarks)]
    for (run, name, step, _), cells in table.items():
        scores = [_fmt(cells[b]["accuracy"], cells[b]["stderr"]) for b in benchmarks]
        lines.append(f"| {run} | {name} | {'' if step is None else step} | " + " | ".join(scores) + " |")
    (root / "results.md").write_text("\n".join(lines) + "\n")
    with open(root / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        header = [f"{b}{suffix}" for b in benchmarks for suffix in ("", "_stderr")]
        writer.writerow(["run", "checkpoint", "step", "path", *header])
        for (run, name, step, path), cells in table.items():
            writer.writerow([run, name, step, path, *[cells[b][k] for b in benchmarks for k in ("accuracy", "stderr")]])
    plot_sweep(rows, benchmarks, root / "results.png")


def main(config: SweepConfig) -> list[dict[str, Any]]:
    return sweep(config)


def cli(argv: list[str] | None = None, *, debug: bool = False) -> int:
    """``cookbook sweep key=value ...`` (``python -m evals.sweeps``)."""
    return run_recipe(SweepConfig, main, sys.argv[1:] if argv is None else argv, group="eval", debug=debug)


if __name__ == "__main__":
    raise SystemExit(cli())
