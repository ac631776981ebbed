"""Training curves from run directories, and sweep scores against training step, as PNG (matplotlib).

    cookbook plot runs/qs1 runs/qs2                    # -> metrics.png (one run: RUN_DIR/metrics.png)
    cookbook plot runs/sft out=curves.png metrics=train/loss,eval/*/accuracy

:func:`plot_runs` draws one panel per curve people look at, each run as its own line: train loss,
test NLL, reward, eval scores (every ``.../accuracy`` metric) and the learning rate, against the
``step`` of ``metrics.jsonl``; panels no run has are left out. Noisy per-step curves (train loss,
reward) are drawn faintly with a moving average over them. :func:`plot_sweep` draws a sweep's
scores (one panel per benchmark, one line per run, standard-error bars) against the checkpoint's
step.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cookbook.errors import ConfigError, DataError, MissingFileError
from cookbook.rows import read_jsonl

# panel title -> metric patterns (fnmatch)
DEFAULT_PANELS: dict[str, tuple[str, ...]] = {
    "train loss": ("train/loss",),
    "test NLL": ("test/nll",),
    "reward": ("reward/mean",),
    "eval scores": ("*/accuracy",),
    "learning rate": ("learning_rate",),
}
SMOOTHED = ("train/loss", "reward/mean")
USAGE = f"""usage: cookbook plot RUN_DIR... [out=FILE.png] [metrics=KEY,PATTERN,...]

Draws the training curves of metrics.jsonl (several runs overlaid) into one PNG (default
RUN_DIR/metrics.png for one run, ./metrics.png for several). Panels: {", ".join(DEFAULT_PANELS)}
(those the runs have); metrics= draws one panel per metric key or fnmatch pattern instead."""
MIN_POINTS_TO_SMOOTH = 20


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``RUN_DIR/metrics.jsonl`` (a path to the file itself works too)."""
    path = Path(run_dir)
    file = path if path.is_file() else path / "metrics.jsonl"
    if not file.is_file():
        raise MissingFileError(f"{run_dir}: no metrics.jsonl (give a run directory)")
    return read_jsonl(file)[0]


def series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one metric, skipping rows without it (and NaN values)."""
    points = [(float(r["step"]), float(r[key])) for r in rows
              if "step" in r and isinstance(r.get(key), int | float) and r[key] == r[key]]
    return [s for s, _ in points], [v for _, v in points]


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_runs(run_dirs: Sequence[str | Path], out: str | Path,
              panels: Mapping[str, Sequence[str]] | None = None) -> Path:
    """One PNG with a panel per curve (see :data:`DEFAULT_PANELS`) and a line per run; returns its path."""
    fig, _ = figure_for_runs(run_dirs, panels)
    return _save(fig, out)


def figure_for_runs(run_dirs: Sequence[str | Path], panels: Mapping[str, Sequence[str]] | None = None
                    ) -> tuple[Any, list[Any]]:
    """The figure of :func:`plot_runs` and its panels (the axes in use), not yet saved."""
    if not run_dirs:
        raise ConfigError("give at least one run directory")
    runs = {_label(d, run_dirs): read_metrics(d) for d in run_dirs}
    keys = sorted({k for rows in runs.values() for r in rows for k in r if k != "step"})
    chosen = {title: [k for k in keys if any(fnmatch.fnmatchcase(k, p) for p in patterns)]
              for title, patterns in (panels or DEFAULT_PANELS).items()}
    chosen = {title: ks for title, ks in chosen.items() if ks}
    if not chosen:
        raise DataError(f"none of the metrics to plot are in {', '.join(map(str, run_dirs))} "
                        f"(they have: {', '.join(keys) or 'nothing'})")
    plt = _pyplot()
    columns = min(len(chosen), 3)
    rows_n = (len(chosen) + columns - 1) // columns
    fig, axes = plt.subplots(rows_n, columns, figsize=(5.2 * columns, 3.8 * rows_n), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, metric_keys) in zip(axes.flat, chosen.items()):
        for i, (label, rows) in enumerate(runs.items()):
            for j, key in enumerate(metric_keys):
                steps, values = series(rows, key)
                if not steps:
                    continue
                color = colors[(i * len(metric_keys) + j) % len(colors)]
                name = label if len(metric_keys) == 1 else f"{label}: {key}"
                if key in SMOOTHED and len(values) >= MIN_POINTS_TO_SMOOTH:
                    ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
                    ax.plot(steps, moving_average(values, max(len(values) // 25, 5)), color=color, label=name)
                else:
                    ax.plot(steps, values, color=color, label=name, marker="o" if len(steps) <= 30 else None,
                            markersize=3)
        ax.set_title(title if len(metric_keys) > 1 else f"{title} ({metric_keys[0]})")
        ax.set_xlabel("step")
        if title in ("train loss", "test NLL") and _positive(ax):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(chosen):]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:len(chosen)]


def plot_sweep(points: Sequence[Mapping[str, Any]], benchmarks: Sequence[str], out: str | Path) -> Path:
    """Accuracy against step: ``points`` are ``{"run", "step", "benchmark", "accuracy", "stderr"}``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(5.2 * len(benchmarks), 3.8), squeeze=False)
    for ax, benchmark in zip(axes.flat, benchmarks):
        mine = [p for p in points if p["benchmark"] == benchmark and p.get("step") is not None
                and p.get("accuracy") is not None]
        for run in sorted({p["run"] for p in mine}):
            line = sorted((p for p in mine if p["run"] == run), key=lambda p: p["step"])
            ax.errorbar([p["step"] for p in line], [p["accuracy"] for p in line],
                        yerr=[p.get("stderr") or 0.0 for p in line], marker="o", markersize=4, capsize=3, label=run)
        ax.set_title(benchmark)
        ax.set_xlabel("step")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if mine:
            ax.legend(fontsize=7)
    return _save(fig, out)


def _positive(ax) -> bool:
    return all(min(line.get_ydata(), default=1.0) > 0 for line in ax.get_lines())


def _label(run_dir: str | Path, all_dirs: Sequence[str | Path]) -> str:
    """The run's folder name, or its path when two runs share a name."""
    names = [Path(d).resolve().name for d in all_dirs]
    name = Path(run_dir).resolve().name
    return name if names.count(name) == 1 else str(run_dir)


def _save(fig: Any, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    close(fig)
    return out


def close(fig: Any) -> None:
    """Free a figure (pyplot keeps every open figure alive)."""
    _pyplot().close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """``cookbook plot RUN_DIR... [out=FILE.png] [metrics=key,pattern,...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    options = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if "=" in a and not Path(a).exists()}
    runs = [a for a in argv if not ("=" in a and not Path(a).exists())]
    unknown = set(options) - {"out", "metrics"}
    if unknown:
        raise ConfigError(f"unknown option {sorted(unknown)[0]!r}; options: out=FILE.png, metrics=a,b,...")
    out = options.get("out") or (Path(runs[0]) / "metrics.png" if len(runs) == 1 else Path("metrics.png"))
    panels = ({m.strip(): (m.strip(),) for m in options["metrics"].split(",") if m.strip()}
              if options.get("metrics") else None)
    path = plot_runs(runs, out, panels)
    print(f"wrote {path}")
    return 0
