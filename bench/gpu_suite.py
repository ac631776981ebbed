"""The GPU suite: everything a short GPU loan should check, as one time-boxed command.

    python -m bench.gpu_suite --out DIR --budget-s 480          # on the GPU machine
    python -m bench.gpu_suite --out DIR --dry-run               # on a CPU, tiny sizes (the test suite runs it)

Stages run in order of value, each in its own process with its own time box (never more than
the budget left), and each writes ``DIR/<stage>.json`` when it ends, so a crash or a time-out in
one stage keeps the others' results. ``DIR/summary.md`` (stage table, failures, the speed targets)
is rewritten after every stage, and ``DIR/log.txt`` holds every command's output. Scratch files (run directories, logs,
bench models) go to ``--work`` (default: a temporary directory), outside DIR, so that DIR holds
at most eight files.

1. ``tests-fp32``, ``tests-bf16``: ``tests/backend`` + ``tests/supervised`` with
   ``COOKBOOK_DEVICE=cuda`` in fp32, then bf16; pass / fail per test (JUnit XML, parsed).
2. ``probes``: ``bench/gpu_probes.py`` (real-vocabulary forward_backward with recomputation,
   split-batch gradients, mixed adapters in fp32, sampled vs forward logprobs, static vs eager).
3. ``quickstart``: ``cookbook quickstart``: seconds and held-out accuracy.
4. ``loops``: a short SFT run (teacher and student checkpoints), then ``rl/addition``,
   ``dpo/addition``, ``distill/on_policy`` for a few steps each, and the official SDK against
   ``cookbook serve-tinker``.
5. ``bench``: ``bench.run`` (LoRA training tokens/s, MFU, peak memory; decode b=1 and b=64 against
   ``transformers`` generate) and ``bench.static_decode`` (static vs eager), Qwen3-0.6B then
   Qwen3-4B shapes at full depth in bf16, with the fraction of the HBM bandwidth limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


@dataclass
class Context:
    out: Path
    work: Path
    dry_run: bool
    device: str
    deadline: float
    log: Path
    env: dict = field(default_factory=dict)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, cmd: list[str], limit: float, env: dict | None = None,
            keep_output: bool = False) -> dict:
        """Run ``cmd`` in the repository with a time limit; its output goes to the suite's log (and
        to the result's ``output`` with ``keep_output``)."""
        limit = max(1.0, min(limit, self.left()))
        start = time.monotonic()
        full_env = {**os.environ, **self.env, **(env or {}), "PYTHONUNBUFFERED": "1"}
        with self.log.open("a") as log:
            log.write(f"\n=== {name}: {shlex.join(cmd)} (limit {limit:.0f}s)\n")
            log.flush()
            with tempfile.TemporaryFile("w+") as buf:
                proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=buf, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                try:
                    rc = proc.wait(timeout=limit)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                    rc = None
                buf.seek(0)
                output = buf.read()
            log.write(output)
        return {"cmd": shlex.join(cmd), "rc": rc, "timed_out": rc is None,
                "seconds": round(time.monotonic() - start, 1), "tail": output[-3000:],
                **({"output": output} if keep_output else {})}


def _load(path: Path) -> dict | None:
    """The JSON a stage's command wrote, or None when it wrote none (it failed or ran out of time)."""
    return json.loads(path.read_text()) if path.exists() else None


# --- stages ------------------------------------------------------------------------------------

def _junit(path: Path) -> dict:
    if not path.exists():
        return {"passed": 0, "failed": [], "skipped": 0}
    passed, failed, skipped = 0, [], 0
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            failed.append({"test": name, "message": (bad.get("message") or "")[:500]})
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return {"passed": passed, "failed": failed, "skipped": skipped}


# a parametrized test id may hold spaces ("[config.json cut off-finished]")
_VERBOSE_LINE = re.compile(r"^(\S+\.py::.*?) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)(?= |$)", re.M)


def _verbose_counts(output: str) -> dict:
    """Per-test outcomes from ``pytest -v`` output: what a pytest killed at its time box leaves
    (it writes no JUnit file then)."""
    passed, failed, skipped = 0, [], 0
    for name, outcome in _VERBOSE_LINE.findall(output):
        if outcome in ("PASSED", "XPASS"):
            passed += 1
        elif outcome in ("SKIPPED", "XFAIL"):
            skipped += 1
        else:
            failed.append({"test": name, "message": outcome.lower()})
    return {"passed": passed, "failed": failed, "skipped": skipped}


def _tests(dtype: str) -> Callable[[Context, float], dict]:
    def stage(ctx: Context, limit: float) -> dict:
        xml = ctx.work / f"tests-{dtype}.xml"
        targets = ["tests/backend", "tests/supervised"]
        collected = None
        if ctx.dry_run:  # every module must import on the GPU image; two of them run
            collected = ctx.run(f"collect {dtype}", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                                     "--collect-only", *targets], limit)
            targets = ["tests/backend/test_errors.py", "tests/supervised/test_lr_schedules.py"]
        run = ctx.run(f"tests {dtype}", [PY, "-m", "pytest", "-v", "-p", "no:cacheprovider", f"--junitxml={xml}",
                                         *targets], limit,
                      env={"COOKBOOK_DEVICE": ctx.device, "COOKBOOK_DTYPE": dtype}, keep_output=True)
        output = run.pop("output")
        counts = _junit(xml) if xml.exists() else _verbose_counts(output)
        ok = (run["rc"] == 0 and not counts["failed"] and counts["passed"] > 0
              and (collected is None or collected["rc"] == 0))
        return {"ok": ok, **counts, "run": run, **({"collect": collected} if collected else {})}
    return stage


def _probes(ctx: Context, limit: float) -> dict:
    out = ctx.out / "probes.json"
    cmd = [PY, "-m", "bench.gpu_probes", "--out", str(out), "--device", ctx.device] + (["--dry-run"] * ctx.dry_run)
    run = ctx.run("probes", cmd, limit)
    probes = json.loads(out.read_text())["probes"] if out.exists() else {}
    return {"ok": run["rc"] == 0 and bool(probes), "probes": probes, "run": run}


def _recipe(ctx: Context, name: str, args: list[str], limit: float) -> dict:
    log_path = ctx.work / "runs" / name.replace("/", "_")
    cmd = [PY, "-m", "recipes", "run", name, f"log_path={log_path}", "progress=false", *args]
    if name == "quickstart":
        cmd = [PY, "-m", "recipes", "quickstart", f"log_path={log_path}", *args]
    run = ctx.run(name, cmd, limit)
    summary = log_path / "summary.json"
    return {"ok": run["rc"] == 0, "summary": _load(summary),
            "log_path": str(log_path), "run": run}


def _quickstart(ctx: Context, limit: float) -> dict:
    args = ["n_train=320", "n_test=16", "n_show=1"] if ctx.dry_run else []
    result = _recipe(ctx, "quickstart", args, limit)
    summary = result["summary"] or {}
    result["accuracy_after"] = summary.get("accuracy_after")
    result["seconds_in_summary"] = summary.get("seconds")
    return result


def _checkpoints(log_path: str) -> list[dict]:
    path = Path(log_path) / "checkpoints.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _loops(ctx: Context, limit: float) -> dict:
    stop = time.monotonic() + min(limit, ctx.left())

    def left(share: int = 1) -> float:  # on a GPU each run gets its share; a dry run is not timed
        return (stop - time.monotonic()) / (1 if ctx.dry_run else share)

    small = ctx.dry_run
    sft_steps = 4 if small else 60
    out: dict = {}
    out["sft"] = _recipe(ctx, "sl/chat_sft", ["data.source=addition", f"max_steps={sft_steps}",
                                              f"data.max_examples={sft_steps * 64 + 64}",
                                              f"save_every={sft_steps // 2}", "batch_size=64"], left(4))
    records = _checkpoints(out["sft"]["log_path"])
    student = next((r["state_path"] for r in records if not r.get("final")), None)
    teacher = next((r["sampler_path"] for r in records if r.get("final")), None)
    rl_sizes = ["groups_per_batch=4", "group_size=2", "n_train=64", "n_test=8"] if small else \
        ["groups_per_batch=32", "group_size=8", "n_test=64"]
    steps = "max_steps=2" if small else "max_steps=5"
    start = [f"load_checkpoint_path={student}"] if student else []
    out["rl/addition"] = _recipe(ctx, "rl/addition", [*start, steps, "eval_every=1", *rl_sizes], left(4))
    out["dpo/addition"] = _recipe(ctx, "dpo/addition", [*start, steps, "eval_every=1", "sft_steps=2",
                                                        "n_train=32" if small else "n_train=512",
                                                        "n_test=8" if small else "n_test=64",
                                                        "batch_size=4" if small else "batch_size=32"], left(3))
    if student and teacher:
        out["distill/on_policy"] = _recipe(ctx, "distill/on_policy", [f"teacher_path={teacher}", *start, steps,
                                                                      "eval_every=1", "kl_samples=2", *rl_sizes],
                                           left(2))
    else:
        out["distill/on_policy"] = {"ok": False, "error": "the SFT run left no checkpoints"}
    out["sdk/serve-tinker"] = ctx.run("sdk", [PY, "-m", "bench.gpu_sdk_flow", "--device", ctx.device], left())
    out["sdk/serve-tinker"]["ok"] = out["sdk/serve-tinker"]["rc"] == 0
    out["packing"] = _packing(ctx, left())
    return {"ok": all(v.get("ok") for v in out.values()), "loops": out}


def _packing(ctx: Context, limit: float) -> dict:
    """``bench.packing`` on mixed lengths: packed rows (run as their documents) against the unpacked
    batch on this device, where each pass's launch overhead weighs more than on a CPU."""
    out = ctx.work / "packing.json"
    sizes = ["--batch", "16", "--steps", "2", "--warmup", "1"] if ctx.dry_run else ["--steps", "8"]
    run = ctx.run("packing", [PY, "-m", "bench.packing", "--data", "mixed", "--json", str(out), *sizes], limit)
    result = _load(out)
    return {"ok": run["rc"] == 0 and result is not None, "result": result, "run": run}


def _bench(ctx: Context, limit: float) -> dict:
    """Per model: training (MFU), the static decode path against eager (the decode targets), then
    the sampling workloads against ``transformers`` generate; each writes its JSON as it ends, so a
    time-out in the slow generate baselines keeps the other figures."""
    stop = time.monotonic() + min(limit, ctx.left())
    models = ["tiny"] if ctx.dry_run else ["qwen3-0.6b", "qwen3-4b"]
    # the torch.compile ablation runs last, on what is left; the models leave it a quarter at least
    models_stop = stop if ctx.dry_run else stop - min(120.0, 0.25 * (stop - time.monotonic()))
    out: dict = {}
    for i, model in enumerate(models):
        share = (models_stop - time.monotonic()) / (1 if ctx.dry_run else len(models) - i)
        model_stop = time.monotonic() + share
        sized = (["--quick", "--decode-batches", "1,8", "--new-tokens", "8", "--per-request", "2"] if ctx.dry_run
                 # per-request generate is batch 1 (tokens/s does not depend on how many are timed)
                 else ["--decode-batches", "1,64", "--new-tokens", "128", "--per-request", "2"])
        runs, rows, meta = {}, [], None
        static_json = ctx.work / f"static-{model}.json"
        for workload, fraction in (("train", 0.45), ("static", 0.45), ("sample", 1.0)):
            box = share if ctx.dry_run else (model_stop - time.monotonic()) * fraction
            if workload == "static":
                runs["static"] = ctx.run(f"static_decode {model}", _static_decode_cmd(ctx, model, static_json), box)
                continue
            run_dir = ctx.work / f"bench-{model}-{workload}"
            cmd = [PY, "-m", "bench.run", "--models", model, "--workloads", workload, "--device", ctx.device,
                   "--out", str(run_dir), "--results-md", "none", *sized]
            runs[workload] = ctx.run(f"bench.run {model} {workload}", cmd, box)
            files = sorted(run_dir.glob("*.json"))
            if files:
                result = json.loads(files[-1].read_text())
                meta = meta or result.get("meta")
                rows += result.get("rows", [])
        out[model] = {"runs": runs, "results": {"meta": meta, "rows": rows} if meta else None,
                      "static": _load(static_json)}
    ok = all(v["results"] is not None and v["static"] is not None and all(r["rc"] == 0 for r in v["runs"].values())
             for v in out.values())
    compiled = _compile(ctx, stop - time.monotonic())
    return {"ok": ok and compiled["ok"], "models": out, "compile": compiled}


def _static_decode_cmd(ctx: Context, model: str, json_path: Path, *extra: str) -> list[str]:
    """``bench.static_decode`` at batch 1 and 64 x 128 new tokens (toy sizes in a dry run)."""
    sizes = (["--rows", "1,8", "--new-tokens", "8", "--repeats", "1"] if ctx.dry_run
             else ["--rows", "1,64", "--new-tokens", "128", "--repeats", "3"])
    return [PY, "-m", "bench.static_decode", "--model", model, "--device", ctx.device, "--json", str(json_path),
            *sizes, *extra]


def _compile(ctx: Context, limit: float) -> dict:
    """The static decode path with the step through torch.compile, against the uncompiled one
    (Qwen3-0.6B shape): whether compiling pays, and what its first call costs. Part of the bench
    stage (what the GPU machine sends back is at most eight files)."""
    model = "tiny" if ctx.dry_run else "qwen3-0.6b"
    out = ctx.work / f"compile-{model}.json"
    run = ctx.run(f"static_decode --compile {model}", _static_decode_cmd(ctx, model, out, "--compile"), limit)
    result = _load(out)
    return {"ok": run["rc"] == 0 and result is not None, "model": model, "static": result, "run": run}


@dataclass(frozen=True)
class Stage:
    name: str
    fn: Callable[[Context, float], dict]
    box_s: float  # on a GPU (share of a 480 s budget)
    dry_box_s: float  # generous: the dry run checks that the code works, on a CPU that may be busy


STAGES = [
    # boxes from the second H200 loan (2026-12-04): the stage took 117 s, 85 s, 47 s, 54 s, 95 s
    Stage("tests-fp32", _tests("float32"), 125, 300),
    Stage("tests-bf16", _tests("bfloat16"), 95, 300),
    Stage("probes", _probes, 60, 300),
    Stage("quickstart", _quickstart, 65, 300),
    Stage("loops", _loops, 115, 900),
    Stage("bench", _bench, 360, 600),
]


# --- targets and summary -------------------------------------------------------------------------

TARGETS = {  # (model, what) -> minimum
    ("qwen3-0.6b", "decode b=1 tok/s"): 400, ("qwen3-4b", "decode b=1 tok/s"): 200,
    ("qwen3-0.6b", "decode b=64 tok/s"): 15_000, ("qwen3-4b", "decode b=64 tok/s"): 6_000,
    ("qwen3-0.6b", "train MFU %"): 20, ("qwen3-4b", "train MFU %"): 30,
}


def speed_rows(bench: dict, device_name: str) -> list[dict]:
    """The speed figures the targets name, from the bench stage's JSON."""
    from bench import flops
    from bench.models import BenchModel
    from bench.report import memory_cell

    peak_bw = flops.default_peak_bandwidth(device_name)
    rows = []
    for name, res in (bench.get("models") or {}).items():
        results, static = res.get("results") or {}, res.get("static") or {}
        shape = (results.get("meta", {}).get("models") or {}).get(name) or static.get("model")
        model = BenchModel(**{k: v for k, v in shape.items() if k in BenchModel.__dataclass_fields__}) \
            if shape else None
        for row in results.get("rows", []):
            if row["workload"] == "train":
                mfu = (row.get("extra") or {}).get("mfu_ours")
                rows.append({"model": name, "what": "train MFU %", "ours": None if mfu is None else 100 * mfu,
                             "baseline": _pct((row.get("extra") or {}).get("mfu_baseline")),
                             "note": f"{row['ours']:,.0f} tok/s, peak memory {memory_cell(row.get('mem_ours'))}"
                             if row.get("ours") else row.get("error")})
            m = re.fullmatch(r"decode b=(\d+)", row["workload"])
            if m and row.get("ours"):
                b = int(m.group(1))
                context = 48 + 64  # mean prompt + half the new tokens
                frac = flops.bandwidth_fraction(model, row["ours"], b, context, peak_bw) if model else None
                rows.append({"model": name, "what": f"decode b={b} tok/s", "ours": row["ours"],
                             "baseline": row.get("baseline"),
                             "note": f"{100 * frac:.1f}% of HBM bandwidth" if frac else "generate beside it"})
        for srow in static.get("rows", []):
            note = "same tokens" if srow["same_tokens"] else "tokens differ"
            if srow.get("static_module_norms_tok_s"):  # the fused-norm ablation
                note += (f"; static with module norms {srow['static_module_norms_tok_s']:,.0f} tok/s "
                         f"(fused norms {srow['static_tok_s'] / srow['static_module_norms_tok_s']:.2f}x)")
            rows.append({"model": name, "what": f"static vs eager b={srow['rows']}", "ours": srow["static_tok_s"],
                         "baseline": srow["eager_tok_s"], "note": note})
    for row in rows:
        target = TARGETS.get((row["model"], row["what"]))
        row["target"] = target
        row["meets"] = None if target is None or row["ours"] is None else row["ours"] >= target
    return rows


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:,.1f}" if isinstance(x, float) and abs(x) < 100 else (f"{x:,.0f}" if isinstance(x, float) else str(x))


def summary_md(meta: dict, results: dict) -> str:
    lines = [f"# GPU suite: {meta['device_name']} ({'dry run' if meta['dry_run'] else 'full'})", "",
             f"Commit {meta['commit']}, budget {meta['budget_s']} s, {meta['elapsed_s']:.0f} s used.", "",
             "| stage | result | seconds |", "|---|---|---|"]
    for stage in STAGES:
        res = results.get(stage.name)
        status = "not run" if res is None else ("ok" if res.get("ok") else "FAILED")
        lines.append(f"| {stage.name} | {status} | {_fmt(res.get('seconds')) if res else '-'} |")
    for dtype in ("fp32", "bf16"):
        res = results.get(f"tests-{dtype}")
        if res:
            lines += ["", f"## Tests ({dtype}): {res['passed']} passed, {len(res['failed'])} failed, "
                          f"{res['skipped']} skipped"]
            lines += [f"- `{f['test']}`: {f['message'][:200]}" for f in res["failed"]]
    probes = (results.get("probes") or {}).get("probes") or {}
    if probes:
        lines += ["", "## Probes", ""]
        for name, p in probes.items():
            facts = {k: v for k, v in p.items() if k not in ("ok", "traceback", "seconds")}
            lines.append(f"- {name}: {'ok' if p.get('ok') else 'FAILED'}: `{json.dumps(facts, default=str)[:400]}`")
    qs = results.get("quickstart")
    if qs:
        lines += ["", f"## Quickstart: accuracy {qs.get('accuracy_after')}, {qs.get('seconds_in_summary')} s "
                      f"(target < 20 s on a GPU)"]
    loops = (results.get("loops") or {}).get("loops") or {}
    if loops:
        lines += ["", "## Loops", ""]
        for name, res in loops.items():
            run = res.get("run", res)
            lines.append(f"- {name}: {'ok' if res.get('ok') else 'FAILED'} ({run.get('seconds', '-')} s)")
        for side, r in (((loops.get("packing") or {}).get("result") or {}).get("sides") or {}).items():
            lines.append(f"  - {side}: {r['rows_per_step']} rows/step, {_fmt(r['tokens_per_s'])} tok/s, "
                         f"{r['ratio_to_unpacked']:.2f}x unpacked")
    speed = speed_rows(results.get("bench") or {}, meta["device_name"])
    if speed:
        lines += ["", "## Speed", "", "| model | figure | ours | beside it | target | met | note |",
                  "|---|---|---|---|---|---|---|"]
        for r in speed:
            met = "-" if r["meets"] is None else ("yes" if r["meets"] else "**no**")
            lines.append(f"| {r['model']} | {r['what']} | {_fmt(r['ours'])} | {_fmt(r['baseline'])} | "
                         f"{_fmt(r['target'])} | {met} | {r['note'] or ''} |")
    compile_stage = (results.get("bench") or {}).get("compile") or {}
    compiled = compile_stage.get("static") or {}
    if compiled.get("rows"):
        lines += ["", f"## torch.compile ablation ({compile_stage['model']}, static path)", "",
                  "| rows | static tok/s | compiled tok/s | gain | same tokens | first compiled call s |",
                  "|---|---|---|---|---|---|"]
        for r in compiled["rows"]:
            lines.append(f"| {r['rows']} | {_fmt(r['static_tok_s'])} | {_fmt(r['static_compiled_tok_s'])} | "
                         f"{r['static_compiled_tok_s'] / r['static_tok_s']:.2f}x | "
                         f"{'yes' if r['compiled_same_tokens'] else 'no'} | {_fmt(r['first_compiled_call_s'])} |")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _device_name(device: str) -> str:
    if not device.startswith("cuda"):
        return "cpu"
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="results: one JSON per stage, summary.md")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a new temporary directory)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget for all stages")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model, toy sizes")
    parser.add_argument("--stages", help="comma-separated subset of: " + ", ".join(s.name for s in STAGES))
    parser.add_argument("--device", help="default: cuda (cpu with --dry-run)")
    parser.add_argument("--box", action="append", default=[], metavar="STAGE=SECONDS",
                        help="a stage's time box in seconds, instead of its share of the budget (repeatable)")
    args = parser.parse_args(argv)
    boxes = {}
    for item in args.box:
        name, _, seconds = item.partition("=")
        try:
            boxes[name] = float(seconds)
        except ValueError:
            parser.error(f"--box {item!r}: expected STAGE=SECONDS")
        if name not in {s.name for s in STAGES}:
            parser.error(f"--box {item!r}: unknown stage {name!r}")
    chosen = args.stages.split(",") if args.stages else [s.name for s in STAGES]
    unknown = set(chosen) - {s.name for s in STAGES}
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}")
    device = args.device or ("cpu" if args.dry_run else "cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-suite-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ctx = Context(out=args.out, work=work, dry_run=args.dry_run, device=device,
                  deadline=started + args.budget_s, log=args.out / "log.txt",
                  env={"COOKBOOK_CACHE": str(work / "cache"), "TINKER_TELEMETRY": "0"})
    meta = {"device": device, "device_name": _device_name(device), "dry_run": args.dry_run, "commit": _commit(),
            "budget_s": args.budget_s, "work": str(work)}
    results: dict = {}
    for stage in STAGES:
        if stage.name not in chosen:
            continue
        if ctx.left() < 10:
            results[stage.name] = {"ok": False, "skipped": "no budget left", "seconds": 0}
            continue
        box = boxes.get(stage.name) or (stage.dry_box_s if args.dry_run else stage.box_s * args.budget_s / 480.0)
        print(f"[{time.monotonic() - started:6.0f}s] {stage.name} (up to {min(box, ctx.left()):.0f}s)", flush=True)
        start = time.monotonic()
        try:
            result = stage.fn(ctx, box)
        except Exception as exc:  # noqa: BLE001 - one stage's bug must not lose the others' results
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.monotonic() - start, 1)
        results[stage.name] = result
        (args.out / f"{stage.name}.json").write_text(json.dumps(result, indent=2, default=str))
        meta["elapsed_s"] = time.monotonic() - started
        (args.out / "summary.md").write_text(summary_md(meta, results))
        print(f"[{time.monotonic() - started:6.0f}s] {stage.name}: {'ok' if result.get('ok') else 'FAILED'}",
              flush=True)
    print((args.out / "summary.md").read_text())
    return 0 if all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
