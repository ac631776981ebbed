"""Packed against unpacked SFT steps on the quickstart's data, side by side in one process.

    python -m bench.packing                          # batch 64, pack lengths 256 and 1024, 8 timed steps
    python -m bench.packing --pack-lengths 512 --steps 12 --json bench/results/cpu-packing.json

Both sides train the same LoRA (rank 32, as ``cookbook quickstart``) on the same batches of
``AdditionTask`` conversations rendered as the quickstart renders them: the unpacked side sends the
batch's conversations as one datum each (``forward_backward`` + ``optim_step``, the SFT loop with
``pack_length=0``), each packed side the same conversations through
``cookbook.supervised.packing.pack_data`` (the loop with ``pack_length=N``: rows of at most N
tokens, per-document attention). Steps alternate between the sides (unpacked, packed 256, packed
1024, unpacked, ...) so drifting machine load hits every side alike; each side's tokens/s is its
real tokens (the conversations' tokens, no padding) over its median step time, and the packed
sides report their ratio to the unpacked one.

``--data addition`` (default) is the quickstart's data: two-digit sums, every conversation 27-28
tokens, so an unpacked batch carries almost no padding. ``--data mixed`` is sums of 1 to 30 digits
(a seeded uniform draw per conversation, 27-112 tokens), the shape of real SFT data with mixed
lengths. Padding every row to the batch's longest would waste a third of such a batch, but the
backend cuts an unpacked batch into length-sorted micro-batches, which pad about 10% of it.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

from tinker import types

from bench.report import write_result


def _data(n: int, kind: str):
    import random

    from cookbook.completers import renderer_for
    from cookbook.supervised.data import conversations_to_data
    from cookbook.tasks import AdditionTask

    renderer = renderer_for("tiny", "tiny")
    if kind == "addition":
        task = AdditionTask(digits=2)
        problems, _ = task.held_out_split(n, 200, seed=0)
        conversations = [task.conversation(p) for p in problems]
    else:
        draw = random.Random(0)
        conversations = []
        for i in range(n):
            task = AdditionTask(digits=draw.randint(1, 30))
            conversations.append(task.conversation(task.problems(1, seed=i)[0]))
    return conversations_to_data(conversations, renderer, "last_assistant_message")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--pack-lengths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--data", choices=["addition", "mixed"], default="addition")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import cookbook
    from cookbook.supervised.packing import pack_data

    steps = args.warmup + args.steps
    data = _data(args.batch * steps, args.data)
    batches = [data[i * args.batch: (i + 1) * args.batch] for i in range(steps)]
    service = cookbook.service_client()
    sides = {"unpacked": 0, **{f"packed {n}": n for n in args.pack_lengths}}
    clients = {name: service.create_lora_training_client(base_model="tiny", rank=args.rank, seed=0)
               for name in sides}
    times: dict[str, list[float]] = {name: [] for name in sides}
    rows: dict[str, int] = {}
    adam = types.AdamParams(learning_rate=1e-3)
    for step, batch in enumerate(batches):
        for name, pack_length in sides.items():
            sent = pack_data(batch, pack_length) if pack_length else batch
            rows[name] = len(sent)
            started = time.perf_counter()
            clients[name].forward_backward(sent, "cross_entropy").result()
            clients[name].optim_step(adam).result()
            if step >= args.warmup:
                times[name].append(time.perf_counter() - started)
    tokens = statistics.mean(sum(d.model_input.length for d in b) for b in batches)
    result: dict = {"benchmark": "packing", "machine": platform.processor() or platform.machine(),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "data": args.data, "batch": args.batch,
                    "rank": args.rank, "tokens_per_step": tokens, "steps": args.steps, "sides": {}}
    base = tokens / statistics.median(times["unpacked"])
    for name in sides:
        per_s = tokens / statistics.median(times[name])
        result["sides"][name] = {"rows_per_step": rows[name], "median_step_s": statistics.median(times[name]),
                                 "step_s": times[name], "tokens_per_s": per_s, "ratio_to_unpacked": per_s / base}
        print(f"{name:>14}: {rows[name]:3d} rows/step, median step {statistics.median(times[name]):.3f}s, "
              f"{per_s:,.0f} tok/s, {per_s / base:.2f}x unpacked")
    write_result(args.json, result)
    return result


if __name__ == "__main__":
    main()
