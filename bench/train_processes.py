"""CPU LoRA training as a new user measures it: each side in its own fresh process.

``bench.run`` times ours and the baseline in one process, on the engine's thread. This script
runs each side alone in a new Python process (nothing else imported or warmed), on a
Qwen3-shaped model (the embedded ``tiny``: 4 layers, hidden 256, a byte vocabulary), with
LoRA on attention + MLP but not the unembedding, and reports tokens/s and the ratio::

    python -m bench.train_processes                       # 32 seqs x 16-384 tok, rank 16, 3 runs per side
    python -m bench.train_processes --rank 32 --seqs 64 --max-len 512
    python -m bench.train_processes --caller-torch        # ours after the caller's thread ran torch work

``--caller-torch``: in our process the main thread first runs a transformers+peft training step
of its own (as a user's reward function or custom code would), then drives our training client;
the row then says how much that costs us (``bench/README.md``, "One compute thread").

Processes alternate (ours, baseline, ours, ...) so drifting machine load hits both; each process
does ``--warmup`` steps and then times ``--steps`` steps (median). Results go to the console and,
with ``--json``, to a file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ATTN_MLP = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _batch(args: argparse.Namespace) -> list[list[int]]:
    from bench import inputs

    return inputs.training_batch(args.seqs, args.min_len, args.max_len)


def _peft_trainer(model_dir: str, seqs: list[list[int]], rank: int):
    """A plain transformers + peft training step on a right-padded batch (bench/baseline.py's
    loop, with the LoRA targets of this script)."""
    import torch

    from bench import baseline

    return baseline.Trainer(Path(model_dir), seqs, torch.device("cpu"), torch.float32, rank=rank, targets=ATTN_MLP)


def _time_steps(step, warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def run_side(args: argparse.Namespace) -> dict:
    """One side in this (fresh) process: the median step time over ``args.steps`` steps."""
    import torch
    from tinker import types

    import cookbook
    from bench import ours
    from cookbook.tiny import tiny_model_dir

    model_dir = str(tiny_model_dir())
    seqs = _batch(args)
    if args.side == "baseline":
        trainer = _peft_trainer(model_dir, seqs, args.rank)
        step = trainer.step
    else:
        if args.caller_torch:  # the user's own torch work, on the main thread, before ours starts
            _peft_trainer(model_dir, seqs[:8], args.rank).step()
        service = cookbook.service_client("local", device="cpu", dtype=torch.float32)
        client = service.create_lora_training_client(model_dir, rank=args.rank, seed=0, train_unembed=False)
        data = ours.datums(seqs)
        adam = types.AdamParams(learning_rate=1e-4)

        def step() -> None:
            fb, opt = client.forward_backward(data, "cross_entropy"), client.optim_step(adam)
            fb.result(), opt.result()
    times = _time_steps(step, args.warmup, args.steps)
    tokens = sum(len(s) - 1 for s in seqs)
    return {"side": args.side, "caller_torch": args.caller_torch, "median_s": statistics.median(times),
            "tokens": tokens, "tokens_per_s": tokens / statistics.median(times), "threads": torch.get_num_threads()}


def _spawn(args: argparse.Namespace, side: str, caller_torch: bool) -> dict:
    cmd = [sys.executable, "-m", "bench.train_processes", "--side", side, "--rank", str(args.rank),
           "--seqs", str(args.seqs), "--min-len", str(args.min_len), "--max-len", str(args.max_len),
           "--warmup", str(args.warmup), "--steps", str(args.steps)] + (["--caller-torch"] if caller_torch else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", choices=["ours", "baseline"], help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--seqs", type=int, default=32)
    parser.add_argument("--min-len", type=int, default=16)
    parser.add_argument("--max-len", type=int, default=384)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3, help="processes per side")
    parser.add_argument("--caller-torch", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(run_side(args)))
        return 0

    variants = [("ours", False), ("baseline", False)] + ([("ours", True)] if args.caller_torch else [])
    results: dict[str, list[float]] = {}
    for run in range(args.runs):
        for side, caller in variants:
            label = side + (" after caller torch" if caller else "")
            res = _spawn(args, side, caller)
            results.setdefault(label, []).append(res["tokens_per_s"])
            print(f"run {run + 1}/{args.runs} {label}: {res['tokens_per_s']:,.0f} tok/s "
                  f"({res['median_s'] * 1000:.0f} ms/step, {res['threads']} threads)", flush=True)
    medians = {label: statistics.median(v) for label, v in results.items()}
    summary = {"setting": f"{args.seqs} seqs x {args.min_len}-{args.max_len} tok, LoRA rank {args.rank} attn+MLP",
               "tokens_per_s": medians, "runs": results,
               "ratio_vs_baseline": {k: v / medians["baseline"] for k, v in medians.items() if k != "baseline"}}
    if "ours after caller torch" in medians:
        summary["caller_torch_slowdown"] = medians["ours"] / medians["ours after caller torch"]
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
