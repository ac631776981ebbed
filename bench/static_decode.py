"""The sampler's two decode paths side by side: eager (growing cache, per-row adapter routing) and
static (fixed buffers per batch bucket, LoRA slot pool, CUDA graphs on CUDA).

Both run in one process on one engine, on the same requests, timed in turns (ABBA, median);
this is what decides on which devices the sampler uses the static path
(``cookbook.backend.local.static_decode.DEVICE_TYPES``)::

    python -m bench.static_decode                          # tiny, CPU: batches 1, 8, 64 x 128 tokens
    python -m bench.static_decode --device cuda --model qwen3-0.6b
    python -m bench.static_decode --adapters 8             # rows spread over 8 LoRA snapshots

Rows sample at temperature 1 with fixed seeds and ``stop=[]``; the table also says whether both
paths gave the same tokens (they should, up to rare ties flipped by rounding). The ablation columns
run the static path with the model's own RMSNorm modules instead of the fused norm
(``DecodeStep(fused_norms=False)``) and, with ``--compile``, with the step through
``torch.compile`` (``StaticDecoder(compile_step=True)``; its first call, which compiles, is timed
apart).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tinker import types

from bench import inputs
from bench.models import get_model
from bench.timing import interleaved
from cookbook.backend.local import Engine, ServiceClient
from cookbook.backend.local.decode_step import DecodeStep
from cookbook.backend.local.static_decode import StaticDecoder


def _clients(service: ServiceClient, model_dir: str, adapters: int) -> list:
    if adapters == 0:
        return [service.create_sampling_client(base_model=model_dir)]
    clients = []
    for i in range(adapters):
        tc = service.create_lora_training_client(model_dir, rank=32, seed=i)
        gen = torch.Generator().manual_seed(i)
        tc.adapter.load_state_dict({k: torch.randn(v.shape, generator=gen) * 0.02
                                    for k, v in tc.adapter.state_dict().items()})
        clients.append(tc.save_weights_and_get_sampling_client())
    return clients


def _sample(clients: list, rows: list[list[int]], new_tokens: int) -> list[list[int]]:
    """One request per row, all submitted before any result is read (the engine coalesces them)."""
    futures = [clients[i % len(clients)].sample(
        types.ModelInput.from_ints(row), 1,
        types.SamplingParams(max_tokens=new_tokens, temperature=1.0, stop=[], seed=i)) for i, row in enumerate(rows)]
    return [list(f.result().sequences[0].tokens) for f in futures]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--rows", default="1,8,64")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--adapters", type=int, default=0, help="LoRA snapshots the rows cycle through (0: base)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows (and the model's shape) here")
    parser.add_argument("--compile", action="store_true",
                        help="also time the static path with the step through torch.compile (first call compiles)")
    args = parser.parse_args(argv)

    engine = Engine(args.device, args.dtype)
    service = ServiceClient(engine=engine)
    bench_model = get_model(args.model, args.layers)
    model_dir = str(bench_model.path)
    clients = _clients(service, model_dir, args.adapters)
    base = clients[0].base

    def decoder(step: DecodeStep, **kw) -> StaticDecoder:
        return engine.call(lambda: StaticDecoder(base.model, step, base.device, base.dtype, **kw))
    static = decoder(base.decode_step)
    sides = {"eager": None, "static": static,  # the ablations share the static path's LoRA slot pool
             "module norms": decoder(DecodeStep(base.model.get_decoder(), fused_norms=False), pool=static.pool)}
    if args.compile:
        sides["compiled"] = decoder(base.decode_step, pool=static.pool, compile_step=True)
    prompt_list = inputs.prompts(8, 32, 64)

    def path(decoder):
        def run():
            base.static_decoder = decoder
            return _sample(clients, rows, args.new_tokens)
        return run

    print(f"{args.model} on {engine.device} ({engine.dtype}), {args.new_tokens} new tokens, "
          f"adapters: {args.adapters or 'none (base)'}; median of {args.repeats}, interleaved")
    columns = ["rows", "eager tok/s", "static tok/s", "static / eager", "same tokens", "decode batches per call",
               "static, module norms tok/s", "fused norms gain"]
    if args.compile:
        columns += ["static, compiled tok/s", "compiled gain", "compiled same tokens", "first compiled call s"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    results = {"model": bench_model.as_dict(), "device": str(engine.device), "dtype": str(engine.dtype),
               "new_tokens": args.new_tokens, "adapters": args.adapters, "prompt_tokens": [len(p) for p in prompt_list],
               "rows": []}
    for n in [int(r) for r in args.rows.split(",")]:
        rows = inputs.decode_rows(prompt_list, n)
        eager_tokens = path(None)()
        same = eager_tokens == path(static)()
        row: dict = {"rows": n}
        if args.compile:  # the first call compiles (and captures): timed apart from the interleaved calls
            started = time.perf_counter()
            row["compiled_same_tokens"] = eager_tokens == path(sides["compiled"])()
            row["first_compiled_call_s"] = time.perf_counter() - started
        batches = engine.stats["sample_batches"]
        times = interleaved({name: path(d) for name, d in sides.items()}, engine.device, warmup=1,
                            repeats=args.repeats)
        per_call = (engine.stats["sample_batches"] - batches) / (len(sides) * (args.repeats + 1))
        tok_s = {name: n * args.new_tokens / t.median for name, t in times.items()}
        eager, fixed, unfused = tok_s["eager"], tok_s["static"], tok_s["module norms"]
        cells = [f"{n}", f"{eager:,.0f}", f"{fixed:,.0f}", f"{fixed / eager:.2f}x", "yes" if same else "no",
                 f"{per_call:g}", f"{unfused:,.0f}", f"{fixed / unfused:.2f}x"]
        row.update(eager_tok_s=eager, static_tok_s=fixed, same_tokens=same, decode_batches_per_call=per_call,
                   static_module_norms_tok_s=unfused)
        if args.compile:
            row["static_compiled_tok_s"] = compiled = tok_s["compiled"]
            cells += [f"{compiled:,.0f}", f"{compiled / fixed:.2f}x", "yes" if row["compiled_same_tokens"] else "no",
                      f"{row['first_compiled_call_s']:.1f}"]
        print("| " + " | ".join(cells) + " |")
        results["rows"].append(row)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    engine.close()


if __name__ == "__main__":
    main()
