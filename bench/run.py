"""``python -m bench.run``: run the suite, print a table, write JSON and ``bench/RESULTS.md``.

Defaults depend on the device: on CUDA (bf16) the full Qwen3-0.6B and Qwen3-4B shapes at the
issue's sizes; on CPU (fp32) ``tiny`` at the issue's sizes plus a 2-layer Qwen3-0.6B shape at
reduced sizes (``bench/settings.py``). ``--quick`` is a smoke run on ``tiny`` with toy sizes.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from . import flops, models, report, settings, workloads
from .probe import ProbePool

WORKLOADS = ("train", "sample", "multilora", "longctx")
BENCH_DIR = Path(__file__).resolve().parent
CPU_DEFAULT_LAYERS = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", help="comma-separated: tiny, qwen3-0.6b, qwen3-4b "
                   "(default: tiny,qwen3-0.6b on CPU; qwen3-0.6b,qwen3-4b on CUDA; tiny with --quick)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: " + ", ".join(WORKLOADS))
    p.add_argument("--layers", type=int, help="layers of the Qwen3 shapes (default: all on CUDA, "
                   f"{CPU_DEFAULT_LAYERS} on CPU)")
    p.add_argument("--repeats", type=int, help="timed calls per side (default 5; 1 with --quick)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per side before timing (>= 1, default 1)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny model, toy sizes, 1 repeat")
    p.add_argument("--device", help="cpu / cuda / cuda:1 (default: cuda when available)")
    p.add_argument("--dtype", help="float32 / bfloat16 (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="directory for the JSON results")
    p.add_argument("--results-md", default=str(report.RESULTS_MD),
                   help="Markdown file to rewrite with this run; 'none' to skip (combine runs: python -m bench.report)")
    p.add_argument("--peak-tflops", type=float, help="device peak bf16 TFLOP/s for MFU (default: known GPUs)")
    p.add_argument("--baseline-rows", type=int, help="rows per baseline training micro-batch (default: automatic)")
    g = p.add_argument_group("size overrides (apply to every model)")
    g.add_argument("--train-seqs", type=int)
    g.add_argument("--train-len", help="MIN:MAX sequence lengths, e.g. 16:512")
    g.add_argument("--new-tokens", type=int)
    g.add_argument("--per-request", type=int, dest="per_request_limit",
                   help="time this many per-request generate calls (0: all)")
    g.add_argument("--decode-batches", help="comma-separated batch sizes of the decode sweep ('' for none)")
    g.add_argument("--longctx-tokens", type=int)
    args = p.parse_args(argv)
    if args.warmup < 1:
        p.error("--warmup must be >= 1")
    return args


@dataclass
class Plan:
    device: torch.device
    dtype: torch.dtype
    models: list[str]
    workloads: list[str]
    layers: int | None  # of the Qwen3 shapes; None = full depth
    repeats: int
    overrides: dict

    def jobs(self) -> list[tuple[str, str]]:
        out = [(m, w) for m in self.models for w in self.workloads if w != "longctx"]
        return out + ([("long-context", "longctx")] if "longctx" in self.workloads else [])


def make_plan(args: argparse.Namespace) -> Plan:
    from cookbook.backend.local.model import resolve_device, resolve_dtype

    device = resolve_device(args.device)
    on_cuda = device.type == "cuda"
    if args.models:
        names = [m.strip() for m in args.models.split(",") if m.strip()]
    else:
        names = ["tiny"] if args.quick else (["qwen3-0.6b", "qwen3-4b"] if on_cuda else ["tiny", "qwen3-0.6b"])
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in chosen if w not in WORKLOADS] + [n for n in names if n not in models.MODEL_NAMES]
    if unknown:
        raise SystemExit(f"unknown model or workload: {', '.join(unknown)}")
    overrides: dict = dict(train_seqs=args.train_seqs, new_tokens=args.new_tokens, longctx_tokens=args.longctx_tokens)
    if args.train_len:
        low, high = (int(x) for x in args.train_len.split(":"))
        overrides.update(train_min_len=low, train_max_len=high)
    overrides["per_request_limit"] = args.per_request_limit
    if args.decode_batches is not None:
        overrides["decode_batches"] = tuple(int(x) for x in args.decode_batches.split(",") if x.strip())
    return Plan(device=device, dtype=resolve_dtype(args.dtype, device), models=names, workloads=chosen,
                layers=args.layers if args.layers is not None else (None if on_cuda else CPU_DEFAULT_LAYERS),
                repeats=args.repeats or (1 if args.quick else 5), overrides=overrides)


def run_jobs(plan: Plan, args: argparse.Namespace, console: Console) -> tuple[list[report.Row], dict, dict]:
    """Run every (model, workload) job; a failing job becomes an error row."""
    import cookbook

    rows: list[report.Row] = []
    model_info: dict[str, dict] = {}
    sizes_info: dict[str, dict] = {}
    service = cookbook.service_client("local", device=str(plan.device), dtype=plan.dtype)
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TextColumn("{task.fields[what]}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("setup", what="")
        ctx = workloads.Context(
            device=plan.device, dtype=plan.dtype, warmup=args.warmup, repeats=plan.repeats, service=service,
            probes=None if plan.device.type == "cuda" else ProbePool(),
            peak_flops=args.peak_tflops * 1e12 if args.peak_tflops else flops.default_peak_flops(plan.device),
            baseline_rows=args.baseline_rows, status=lambda what: progress.update(task, what=what))
        for name, workload in plan.jobs():
            progress.update(task, description=f"{name} · {workload}", what="building model")
            sizes = settings.sizes_for(name, plan.device.type, args.quick, plan.overrides)
            sizes_info[name] = sizes.as_dict()
            start = time.perf_counter()
            try:
                if workload == "longctx":
                    model, new_rows = workloads.longctx(ctx, sizes)
                else:
                    layers = plan.layers if name in models.DEEP_SHAPES else None
                    model = ctx.on_compute_thread(lambda name=name, layers=layers: models.get_model(name, layers))
                    run_workload = {"train": workloads.train, "sample": workloads.sample,
                                    "multilora": workloads.multi_lora}[workload]
                    new_rows = run_workload(ctx, model, sizes)
                model_info[model.name] = model.as_dict()
            except Exception as exc:  # noqa: BLE001 - one failing workload (e.g. OOM) must not stop the suite
                console.print(f"[red]{name} · {workload} failed:[/red]\n{traceback.format_exc()}")
                new_rows = [report.Row(name, workload, "", "", "", error=f"{type(exc).__name__}: {exc}"[:200])]
            workloads.free_memory(plan.device)  # after the except block, so a failure's frames are gone too
            for row in new_rows:
                row.extra["job_seconds"] = round(time.perf_counter() - start, 1)
                console.print(_one_line(row))
            rows += new_rows
    return rows, model_info, sizes_info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    console = Console()
    if not console.is_terminal:  # logs and pipes: do not fold the table into 80 columns
        console = Console(width=200)
    started = time.time()
    rows, model_info, sizes_info = run_jobs(plan, args, console)

    on_cuda = plan.device.type == "cuda"
    notes = []
    if not on_cuda and plan.layers is not None and any(n in models.DEEP_SHAPES for n in plan.models):
        notes.append(f"CPU run: the Qwen3 shapes keep {plan.layers} of their layers (full width and vocabulary) and "
                     "run reduced workload sizes (see Settings); full depth and the issue's sizes are for CUDA.")
    device_name = _device_name(plan.device)
    slug = re.sub(r"[^a-z0-9]+", "-", (device_name if on_cuda else "cpu").lower()).strip("-")
    json_path = args.out / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    cli = argv if argv is not None else sys.argv[1:]
    meta = dict(
        device=str(plan.device), device_name=device_name, dtype=str(plan.dtype).replace("torch.", ""),
        threads=torch.get_num_threads(), date=time.strftime("%Y-%m-%d %H:%M:%S %Z"), commit=_commit(),
        command=" ".join(["python -m bench.run", shlex.join(cli)]).strip(), versions=_versions(),
        quick=args.quick, warmup=args.warmup, repeats=plan.repeats, models=model_info, sizes=sizes_info,
        notes=notes, duration_s=round(time.time() - started, 1), json=_rel(json_path),
        memory_method=("CUDA: torch.cuda.max_memory_allocated, in-process, on each side's first call." if on_cuda else
                       "CPU: resident set size (VmHWM after a clear_refs reset), each side in a fresh process, "
                       "on its first call after loading; sampling memory is not measured on CPU."),
    )
    report.write_json(json_path, meta, rows)
    console.print(report.console_table(rows, title=f"{device_name} · {meta['dtype']} · {meta['duration_s']:.0f} s"))
    written = [_rel(json_path)]
    if args.results_md != "none":
        report.write_markdown(Path(args.results_md), report.markdown([{"meta": meta,
                                                                       "rows": [r.as_dict() for r in rows]}]))
        written.append(_rel(Path(args.results_md)))
    console.print("wrote " + " and ".join(written))
    return 1 if any(r.error for r in rows) else 0


def _one_line(row: report.Row) -> str:
    if row.error:
        return f"[red]✗ {row.model} · {row.workload}: {row.error}[/red]"
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    return (f"✓ {row.model} · {row.workload} vs {row.baseline_name}: ours {report.format_value(row.ours, row.unit)}, "
            f"baseline {report.format_value(row.baseline, row.unit)}, ratio {ratio}")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{model or platform.processor() or 'CPU'} ({os.cpu_count()} cores)"


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict:
    import peft
    import transformers

    return dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
                python=platform.python_version())


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(BENCH_DIR.parent))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
