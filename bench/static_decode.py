"""The sampler's two decode paths side by side: eager (growing cache, per-row adapter routing) and
static (fixed buffers per batch bucket, LoRA slot pool, CUDA graphs on CUDA).

Both run in one process on one engine, on the same requests, timed in turns (ABBA, median);
this is what decides on which devices the sampler uses the static path
(``cookbook.backend.local.static_decode.DEVICE_TYPES``)::

    python -m bench.static_decode                          # tiny, CPU: batches 1, 8, 64 x 128 tokens
    python -m bench.static_decode --device cuda --model qwen3-0.6b
    python -m bench.static_decode --adapters 8             # rows spread over 8 LoRA snapshots

Rows sample at temperature 1 with fixed seeds and ``stop=[]``; the table also says whether both
paths gave the same tokens (they should, up to rare ties flipped by rounding). The ablation column
runs the static path with the model's own RMSNorm modules instead of the fused norm
(``DecodeStep(fused_norms=False)``).
"""

from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args(argv)

    engine = Engine(args.device, args.dtype)
    service = ServiceClient(engine=engine)
    bench_model = get_model(args.model, args.layers)
    model_dir = str(bench_model.path)
    clients = _clients(service, model_dir, args.adapters)
    base = clients[0].base
    static = engine.call(lambda: StaticDecoder(base.model, base.decode_step, base.device, base.dtype))
    unfused_step = DecodeStep(base.model.get_decoder(), fused_norms=False)
    module_norms = engine.call(lambda: StaticDecoder(base.model, unfused_step, base.device, base.dtype,
                                                     pool=static.pool))
    prompt_list = inputs.prompts(8, 32, 64)

    def path(decoder):
        def run():
            base.static_decoder = decoder
            return _sample(clients, rows, args.new_tokens)
        return run

    print(f"{args.model} on {engine.device} ({engine.dtype}), {args.new_tokens} new tokens, "
          f"adapters: {args.adapters or 'none (base)'}; median of {args.repeats}, interleaved")
    print("| rows | eager tok/s | static tok/s | static / eager | same tokens | decode batches per call "
          "| static, module norms tok/s | fused norms gain |")
    print("|---|---|---|---|---|---|---|---|")
    results = {"model": bench_model.as_dict(), "device": str(engine.device), "dtype": str(engine.dtype),
               "new_tokens": args.new_tokens, "adapters": args.adapters, "prompt_tokens": [len(p) for p in prompt_list],
               "rows": []}
    for n in [int(r) for r in args.rows.split(",")]:
        rows = inputs.decode_rows(prompt_list, n)
        same = path(None)() == path(static)()
        batches = engine.stats["sample_batches"]
        times = interleaved({"eager": path(None), "static": path(static), "module norms": path(module_norms)},
                            engine.device, warmup=1, repeats=args.repeats)
        per_call = (engine.stats["sample_batches"] - batches) / (3 * (args.repeats + 1))
        eager, fixed, unfused = (n * args.new_tokens / times[k].median for k in ("eager", "static", "module norms"))
        print(f"| {n} | {eager:,.0f} | {fixed:,.0f} | {fixed / eager:.2f}x | {'yes' if same else 'no'} "
              f"| {per_call:g} | {unfused:,.0f} | {fixed / unfused:.2f}x |")
        results["rows"].append({"rows": n, "eager_tok_s": eager, "static_tok_s": fixed, "same_tokens": same,
                                "decode_batches_per_call": per_call, "static_module_norms_tok_s": unfused})
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    engine.close()


if __name__ == "__main__":
    main()
