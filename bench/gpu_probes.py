"""Correctness probes of the local backend on a GPU, each recorded as soon as it finishes.

    python -m bench.gpu_probes --out probes.json [--device cuda] [--dry-run]

Each probe checks one property that only a real device can show and writes its result
(``ok``, the numbers, or the error) into the JSON file before the next probe starts, so a crash
or a time-out keeps what ran. ``--dry-run`` runs the same code on the CPU with the ``tiny`` model
and toy sizes (seconds): the test suite runs it so the probes cannot rot without a GPU.

Probes (model shapes: ``bench/models.py``; GPU / dry run):
- ``real_vocab_forward_backward``: ``forward_backward`` on > 4k tokens with a ~150k vocabulary
  (Qwen3-0.6B shape, bf16), once as planned and once with decoder layers recomputed (little free
  memory): the recomputation that raised ``CheckpointError`` on CUDA. Finite loss and gradients,
  the two losses equal.
- ``split_gradients_equal``: a batch split into micro-batches for memory (with recomputation) gives
  the one-batch gradients (fp32, 150k vocabulary).
- ``mixed_adapters_fp32``: 8 adapters + the base model decoded greedily in one batch give each one's
  tokens alone (fp32; the bf16 count is recorded beside it).
- ``sampled_vs_forward_logprobs``: the logprobs ``sample`` reports against ``compute_logprobs`` of
  the same tokens (bf16): mean / max |diff|.
- ``static_vs_eager``: the static decode path (CUDA graphs) against the eager one, greedy: the same
  tokens in fp32 (the check), and in bf16 the tokens, logprob difference and the speed of each.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import torch
from tinker import types

from bench.models import get_model
from cookbook.backend.local import Engine, ServiceClient, memory
from cookbook.backend.local.static_decode import StaticDecoder


class Probes:
    def __init__(self, device: str, dry_run: bool, checkpoint_root: Path) -> None:
        self.device, self.dry_run = torch.device(device), dry_run
        self.checkpoint_root = checkpoint_root
        self._services: dict[str, ServiceClient] = {}

    def service(self, dtype: str) -> ServiceClient:
        if dtype not in self._services:
            self._services[dtype] = ServiceClient(engine=Engine(str(self.device), dtype),
                                                  checkpoint_root=self.checkpoint_root / dtype)
        return self._services[dtype]

    def model(self, name: str, layers: int | None = None) -> str:
        return "tiny" if self.dry_run else str(get_model(name, layers).path)

    def close(self) -> None:
        for service in self._services.values():
            service.engine.close()

    # --- the probes -------------------------------------------------------------------------

    def real_vocab_forward_backward(self) -> dict:
        service = self.service("float32" if self.dry_run else "bfloat16")
        tc = service.create_lora_training_client(self.model("qwen3-0.6b"), rank=32, seed=0)
        seqs, length = (4, 64) if self.dry_run else (8, 640)
        data = _data(seqs, length, tc.base.vocab_size)
        planned = _forward_backward(tc, data)
        forced = _forward_backward(tc, data, free_bytes=_free_for_tokens(tc, length))
        ok = all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in (planned, forced))
        ok = ok and abs(planned["loss"] - forced["loss"]) <= 1e-2 * abs(planned["loss"])
        return {"ok": ok, "tokens": seqs * length, "vocab": tc.base.vocab_size, "planned": planned,
                "recomputed": forced}

    def split_gradients_equal(self) -> dict:
        service = self.service("float32")
        tc = service.create_lora_training_client(self.model("long-context"), rank=16, seed=1)
        _randomize(tc)
        data = _data(6, 48 if self.dry_run else 512, tc.base.vocab_size, ragged=True)
        whole = _forward_backward(tc, data, keep_grads=True)
        split = _forward_backward(tc, data, free_bytes=_free_for_tokens(tc, 2 * (48 if self.dry_run else 512)),
                                  keep_grads=True)
        num = sum(float((a - b).norm() ** 2) for a, b in zip(whole.pop("grads"), split["grads"])) ** 0.5
        split.pop("grads")
        rel = num / max(whole["grad_norm"], 1e-30)
        return {"ok": rel < 1e-4 and split["micro_batches"] > 1, "grad_rel_diff": rel, "whole": whole,
                "split": split}

    def mixed_adapters_fp32(self) -> dict:
        out = {}
        for dtype in ("float32",) if self.dry_run else ("float32", "bfloat16"):
            service = self.service(dtype)
            model = self.model("qwen3-0.6b", layers=None if self.dry_run else 4)
            out[dtype] = _mixed_decode(service, model, adapters=8)
        out["ok"] = out["float32"]["rows_equal"] == out["float32"]["rows"]
        return out

    def sampled_vs_forward_logprobs(self) -> dict:
        service = self.service("float32" if self.dry_run else "bfloat16")
        sampler = service.create_sampling_client(base_model=self.model("qwen3-0.6b"))
        rows, new = (4, 16) if self.dry_run else (16, 64)
        diffs: list[float] = []
        futures = [sampler.sample(types.ModelInput.from_ints(p), 1,
                                  types.SamplingParams(max_tokens=new, temperature=1.0, stop=[], seed=i))
                   for i, p in enumerate(_prompts(rows, sampler.get_tokenizer()))]
        for prompt, future in zip(_prompts(rows, sampler.get_tokenizer()), futures):
            seq = future.result().sequences[0]
            full = sampler.compute_logprobs(types.ModelInput.from_ints(prompt + list(seq.tokens))).result()
            diffs += [abs(a - b) for a, b in zip(seq.logprobs, full[len(prompt):])]
        mean, worst = sum(diffs) / len(diffs), max(diffs)
        bound = 1e-4 if service.engine.dtype == torch.float32 else 0.1
        return {"ok": worst < bound, "dtype": str(service.engine.dtype), "tokens": len(diffs),
                "mean_abs_diff": mean, "max_abs_diff": worst, "bound": bound}

    def static_vs_eager(self) -> dict:
        """fp32 (the check): the static path gives the eager path's greedy tokens; bf16 (on a GPU only):
        the same comparison at batch 1 and 64 with each path's speed (bf16 near-ties may flip a row)."""
        fp32 = self._static_vs_eager("float32", (1, 8), 16 if self.dry_run else 32)
        out = {"captured_graphs": self.device.type == "cuda", "ok": fp32["all_equal"], "float32": fp32}
        if not self.dry_run:
            out["bfloat16"] = self._static_vs_eager("bfloat16", (1, 64), 128)
        return out

    def _static_vs_eager(self, dtype: str, batches: tuple[int, ...], new: int) -> dict:
        service = self.service(dtype)
        sampler = service.create_sampling_client(base_model=self.model("qwen3-0.6b"))
        base = sampler.base
        static = base.static_decoder
        if static is None:  # off CUDA the sampler decodes eagerly; build the static path by hand
            static = service.engine.call(lambda: StaticDecoder(base.model, base.decode_step, base.device, base.dtype,
                                                               capture=False))
        out: dict = {"rows": {}, "new_tokens": new}
        all_equal = True
        for rows in batches:
            prompts = _prompts(rows, sampler.get_tokenizer())
            results = {}
            for path, decoder in (("eager", None), ("static", static)):
                base.static_decoder = decoder
                _greedy(sampler, prompts, 4)  # warm-up (graph capture)
                start = time.perf_counter()
                results[path] = _greedy(sampler, prompts, new)
                results[path + "_s"] = time.perf_counter() - start
            equal = sum(a[0] == b[0] for a, b in zip(results["eager"], results["static"]))
            lp = [abs(x - y) for a, b in zip(results["eager"], results["static"]) if a[0] == b[0]
                  for x, y in zip(a[1], b[1])]
            all_equal &= equal == rows
            out["rows"][rows] = {"rows_equal": equal, "max_logprob_diff": max(lp) if lp else None,
                                 "eager_tok_s": rows * new / results["eager_s"],
                                 "static_tok_s": rows * new / results["static_s"]}
        base.static_decoder = static if self.device.type == "cuda" else None
        out["all_equal"] = all_equal
        return out


PROBES = ("real_vocab_forward_backward", "split_gradients_equal", "mixed_adapters_fp32",
          "sampled_vs_forward_logprobs", "static_vs_eager")


# --- helpers ---------------------------------------------------------------------------------

def _data(seqs: int, length: int, vocab: int, ragged: bool = False) -> list[types.Datum]:
    gen = torch.Generator().manual_seed(seqs * 7919 + length)
    data = []
    for i in range(seqs):
        n = max(8, length - i * (length // (seqs + 1))) if ragged else length
        ids = torch.randint(1, vocab, (n + 1,), generator=gen).tolist()
        data.append(types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]),
                                loss_fn_inputs=dict(target_tokens=ids[1:], weights=[1.0] * n)))
    return data


def _free_for_tokens(tc, tokens: int) -> int:
    """Free memory at which a micro-batch holds about ``tokens`` tokens (forcing a split)."""
    cost = tc.base.activation_cost()
    return int((cost.reserve + tokens * cost.per_token) / memory.HEADROOM)


def _forward_backward(tc, data, free_bytes: int | None = None, keep_grads: bool = False) -> dict:
    real_free, calls = memory.free_memory, []
    real_seq = tc.base.sequence_logprobs
    if free_bytes is not None:
        memory.free_memory = lambda device: free_bytes
    tc.base.sequence_logprobs = lambda *args, **kw: calls.append(tc.base.checkpointing.on) or real_seq(*args, **kw)
    try:
        if tc.base.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(tc.base.device)
        start = time.perf_counter()
        out = tc.forward_backward(data, "cross_entropy").result()
        seconds = time.perf_counter() - start
    finally:
        memory.free_memory = real_free
        del tc.base.sequence_logprobs
    grads = tc.service.engine.call(lambda: [p.grad.detach().float().clone() for p in tc.adapter.parameters()])
    tc.service.engine.call(lambda: [setattr(p, "grad", None) for p in tc.adapter.parameters()])
    result = {"loss": out.metrics["loss:sum"], "grad_norm": sum(float(g.norm() ** 2) for g in grads) ** 0.5,
              "micro_batches": len(calls), "recomputed": any(calls), "seconds": seconds}
    if tc.base.device.type == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated(tc.base.device) / 2**30
    if keep_grads:
        result["grads"] = grads
    return result


def _randomize(tc, scale: float = 0.05) -> None:
    gen = torch.Generator().manual_seed(11)
    state = tc.adapter.state_dict()
    tc.adapter.load_state_dict({k: torch.randn(v.shape, generator=gen) * scale for k, v in state.items()})


def _prompts(rows: int, tokenizer) -> list[list[int]]:
    return [tokenizer.encode(f"{17 * i + 3}+{29 * i + 5}=") for i in range(rows)]


def _greedy(sampler, prompts: list[list[int]], new: int) -> list[tuple[list[int], list[float]]]:
    params = types.SamplingParams(max_tokens=new, temperature=0.0, stop=[])
    futures = [sampler.sample(types.ModelInput.from_ints(p), 1, params) for p in prompts]
    return [(list(s.tokens), list(s.logprobs)) for s in (f.result().sequences[0] for f in futures)]


def _mixed_decode(service: ServiceClient, model: str, adapters: int) -> dict:
    samplers = []
    for i in range(adapters):
        tc = service.create_lora_training_client(model, rank=8, seed=i)
        _randomize(tc, scale=0.3)
        samplers.append(tc.save_weights_and_get_sampling_client())
    samplers.append(service.create_sampling_client(base_model=model))
    prompt = types.ModelInput.from_ints(_prompts(1, samplers[0].get_tokenizer())[0])
    params = types.SamplingParams(max_tokens=16, temperature=0.0, stop=[])
    alone = [s.sample(prompt, 2, params).result() for s in samplers]
    busy = service.engine.submit(lambda: time.sleep(0.3))  # hold the worker: all requests queue up
    together = [s.sample(prompt, 2, params) for s in samplers]
    busy.result()
    together_results = [f.result() for f in together]
    equal = sum(a.tokens == b.tokens for x, y in zip(alone, together_results)
                for a, b in zip(x.sequences, y.sequences))
    return {"rows": 2 * len(samplers), "rows_equal": equal,
            "distinct_outputs": len({tuple(r.sequences[0].tokens) for r in alone})}


def run(out: Path, device: str, dry_run: bool, only: list[str] | None = None) -> dict:
    results: dict = {"device": device, "dry_run": dry_run, "probes": {}}
    # checkpoints and run records go to a scratch folder: the suite's output folder holds only what it sends back
    scratch = tempfile.mkdtemp(prefix="gpu-probes-")
    probes = Probes(device, dry_run, Path(scratch))
    try:
        for name in only or PROBES:
            start = time.perf_counter()
            try:
                result = getattr(probes, name)()
            except BaseException as exc:  # noqa: BLE001 - recorded, the next probe still runs
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                          "traceback": traceback.format_exc()[-4000:]}
            result["seconds"] = round(time.perf_counter() - start, 2)
            results["probes"][name] = result
            out.write_text(json.dumps(results, indent=2, default=str))
            print(f"{name}: {'ok' if result['ok'] else 'FAILED'} ({result['seconds']}s)", flush=True)
    finally:
        probes.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_probes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dry-run", action="store_true", help="tiny model, toy sizes (the CPU check)")
    parser.add_argument("--only", help="comma-separated probe names")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    results = run(args.out, args.device, args.dry_run, args.only.split(",") if args.only else None)
    return 0 if all(r["ok"] for r in results["probes"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

