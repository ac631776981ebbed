"""The workloads: training step, concurrent sampling (+ decode sweep), multi-LoRA memory, long-context memory.

Each function builds its fixed-seed inputs once, hands the same inputs to ours and to the
baseline, checks that both did the same work (equal first-step losses, exactly ``new_tokens``
tokens per row) and returns :class:`~bench.report.Row` results.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from . import baseline, flops, inputs, memory, models, multilora, ours, probe, timing
from .memory import MemStats
from .models import BenchModel
from .report import Row
from .settings import Sizes

T = TypeVar("T")
GiB = 1024**3
CPU_BASELINE_BUDGET = 8 * GiB  # activations the baseline may use per micro-batch on CPU


@dataclass
class Context:
    device: torch.device
    dtype: torch.dtype
    warmup: int  # >= 1: the first call of every side is its first warm-up call
    repeats: int
    service: Any  # the local backend's service client
    probes: probe.ProbePool | None  # CPU: peak memory in fresh processes
    peak_flops: float | None
    baseline_rows: int | None  # rows per baseline micro-batch (None: automatic)
    status: Callable[[str], None]

    def on_compute_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the thread where ours computes (the engine's worker).

        Baseline work runs there too: on CPU, a second thread running parallel torch ops gets its
        own OpenMP thread team, and more OpenMP threads than cores slows both sides' matmuls
        (bench/README.md, "One compute thread").
        """
        return self.service.engine.call(fn)

    def baseline_side(self, fn: Callable[[], T]) -> Callable[[], T]:
        return lambda: self.on_compute_thread(fn)

    def first_call(self, fn: Callable[[], T]) -> tuple[T, MemStats | None]:
        """The first (warm-up) call of a side; on CUDA also its peak memory, measured in-process."""
        if self.device.type == "cuda":
            return memory.measure(fn, self.device)
        return fn(), None

    def time(self, sides: dict[str, Callable[[], Any]], prefix: str) -> dict[str, timing.Timings]:
        return timing.interleaved(sides, self.device, warmup=self.warmup - 1, repeats=self.repeats,
                                  on_call=lambda what: self.status(f"{prefix}: {what}"))


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _activation_bytes_per_token(model: BenchModel, dtype: torch.dtype, device: torch.device, width: int) -> float:
    """Rough activation memory of the baseline's backward per padded token.

    Saved tensors per layer: ~6h + 6q + 4kv + 4i elements in the model dtype (norms, projections,
    rotary, MLP) plus peft's fp32 copies of every LoRA input (5h + q + i); CPU attention with a
    padding mask may keep the [heads x width] probabilities; then the fp32 logits path.
    """
    h, i = model.hidden, model.intermediate
    q, kv = model.heads * model.head_dim, model.kv_heads * model.head_dim
    elem = torch.finfo(dtype).bits // 8
    layer = elem * (6 * h + 6 * q + 4 * kv + 4 * i) + 4 * (5 * h + q + i)
    if device.type == "cpu":
        layer += 4 * model.heads * width
    return model.layers * layer + model.vocab * (elem + 12)  # logits, fp32 copy, log-softmax, gradient


def _baseline_budget(model: BenchModel, dtype: torch.dtype, device: torch.device) -> float:
    """Memory for the baseline's activations: half of what stays free once both sides' weights are in."""
    if device.type != "cuda":
        return CPU_BASELINE_BUDGET
    free, _ = torch.cuda.mem_get_info(device)
    weights = (model.linear_params + model.vocab * model.hidden) * (torch.finfo(dtype).bits // 8)
    return max(0.0, 0.5 * (free - 2 * weights))


def _loss_check(row: Row, loss_ours: float, loss_base: float, dtype: torch.dtype) -> None:
    """Both sides start from B = 0 LoRA on the same weights: their first losses must agree."""
    rel = abs(loss_ours - loss_base) / max(abs(loss_base), 1e-9)
    row.extra.update(first_loss_ours=loss_ours, first_loss_baseline=loss_base, first_loss_rel_diff=rel)
    if rel > (1e-3 if dtype == torch.float32 else 3e-2):
        row.notes.append(f"{row.model} {row.workload}: first-step losses differ by {rel:.2%} "
                         f"(ours {loss_ours:.4f}, baseline {loss_base:.4f}): not the same computation")


# --- training --------------------------------------------------------------------------------
def train(ctx: Context, model: BenchModel, sizes: Sizes) -> list[Row]:
    seqs = inputs.training_batch(sizes.train_seqs, sizes.train_min_len, sizes.train_max_len)
    trained = [len(s) - 1 for s in seqs]
    real, width = sum(trained), max(trained)
    per_token = _activation_bytes_per_token(model, ctx.dtype, ctx.device, width)
    budget = _baseline_budget(model, ctx.dtype, ctx.device)
    rows_mb = ctx.baseline_rows or baseline.micro_batch_rows(len(seqs), width, per_token, budget)
    setting = (f"{len(seqs)} seqs x {sizes.train_min_len}-{sizes.train_max_len} tok "
               f"({real:,} real / {len(seqs) * width:,} padded)")
    row = Row(model.label, "train", setting, "tok/s", "transformers+peft, padded batch", target=1.5)
    row.extra.update(real_tokens=real, padded_tokens=len(seqs) * width, baseline_rows_per_micro_batch=rows_mb)
    if rows_mb < len(seqs):
        row.notes.append(f"{model.name} train: the baseline's padded batch runs as micro-batches of {rows_mb} rows "
                         "(gradient accumulation) so that it fits in memory.")

    probed: dict[str, MemStats] = {}
    if ctx.probes is not None:
        for side in ("ours", "baseline"):
            ctx.status(f"train: {side} peak memory (fresh process)")
            res = ctx.probes.run(probe.step_memory, side, model.path, seqs, str(ctx.device), ctx.dtype,
                                 rows_mb if side == "baseline" else None, True)
            probed[side] = MemStats(**res["memory"])

    ctx.status("train: loading")
    ours_t = ours.Trainer(ctx.service, model.path, seqs)
    base_t = ctx.on_compute_thread(lambda: baseline.Trainer(model.path, seqs, ctx.device, ctx.dtype, rows_mb))
    row.extra.update(trainable_ours=ours_t.trainable_params(), trainable_baseline=base_t.trainable_params())
    if row.extra["trainable_ours"] != row.extra["trainable_baseline"]:
        row.notes.append(f"{model.name}: LoRA sizes differ (ours {row.extra['trainable_ours']:,}, "
                         f"baseline {row.extra['trainable_baseline']:,} parameters)")
    ctx.status("train: ours (warm-up)")
    loss_o, m_o = ctx.first_call(ours_t.step)
    ctx.status("train: baseline (warm-up)")
    loss_b, m_b = ctx.first_call(ctx.baseline_side(base_t.step))
    _loss_check(row, loss_o, loss_b, ctx.dtype)
    row.mem_ours, row.mem_baseline = probed.get("ours", m_o), probed.get("baseline", m_b)

    times = ctx.time({"ours": ours_t.step, "baseline": ctx.baseline_side(base_t.step)}, "train")
    row.ours, row.baseline = real / times["ours"].median, real / times["baseline"].median
    row.extra.update(step_s_ours=times["ours"].as_dict(), step_s_baseline=times["baseline"].as_dict())
    if ctx.peak_flops:
        work = flops.train_flops(model, trained)
        row.extra.update(model_flops_per_step=work, peak_flops=ctx.peak_flops,
                         mfu_ours=flops.mfu(work, times["ours"].median, ctx.peak_flops),
                         mfu_baseline=flops.mfu(work, times["baseline"].median, ctx.peak_flops))
    return [row]


# --- sampling --------------------------------------------------------------------------------
def _check_lengths(outputs: list[list[int]], new_tokens: int | list[int], who: str) -> None:
    """Every row has exactly the requested length (one for all rows, or one per row)."""
    wanted = new_tokens if isinstance(new_tokens, list) else [new_tokens] * len(outputs)
    bad = [(len(o), w) for o, w in zip(outputs, wanted) if len(o) != w]
    if bad:
        raise RuntimeError(f"{who} returned {len(bad)} rows of another length than requested "
                           f"(e.g. {bad[0][0]} instead of {bad[0][1]})")


def sample(ctx: Context, model: BenchModel, sizes: Sizes) -> list[Row]:
    """64 concurrent ``sample`` calls vs per-request and batched ``generate``; then the decode sweep."""
    prompt_list = inputs.prompts(sizes.prompts, sizes.prompt_min_len, sizes.prompt_max_len)
    rows = inputs.sample_rows(prompt_list, sizes.samples_per_prompt)
    n = sizes.new_tokens
    k = min(sizes.per_request_limit or len(rows), len(rows))
    ctx.status("sample: loading")
    sampler = ours.Sampler(ctx.service, model.path)
    gen = ctx.on_compute_thread(lambda: baseline.Generator(model.path, ctx.device, ctx.dtype))
    sides = {
        "ours": lambda: sampler.sample(rows, n),
        "batched generate": ctx.baseline_side(lambda: gen.batched(rows, n)),
        "per-request generate": ctx.baseline_side(lambda: gen.per_request(rows[:k], n)),
    }
    mems: dict[str, MemStats | None] = {}
    before = sampler.decode_batches()
    for name, fn in sides.items():
        ctx.status(f"sample: {name} (warm-up)")
        out, mems[name] = ctx.first_call(fn)
        _check_lengths(out, n, name)
    batches_per_call = sampler.decode_batches() - before
    times = ctx.time(sides, "sample")
    tps = {name: (k if name == "per-request generate" else len(rows)) * n / t.median for name, t in times.items()}

    setting = f"{sizes.prompts} prompts x {sizes.samples_per_prompt} samples, {n} new tok"
    extra = dict(rows=len(rows), new_tokens=n, per_request_timed=k, ours_decode_batches_per_call=batches_per_call,
                 seconds={name: t.as_dict() for name, t in times.items()})
    notes = []
    if k < len(rows):
        notes.append(f"{model.name} sample: per-request generate is timed on the first {k} of {len(rows)} requests "
                     "(independent batch-1 calls: tokens/s does not depend on how many are timed).")
    if batches_per_call > 1:
        notes.append(f"{model.name} sample: the engine decoded the {len(rows)} concurrent calls in "
                     f"{batches_per_call} batches, not one.")
    out = [
        Row(model.label, "sample", setting, "tok/s", "generate per request", ours=tps["ours"],
            baseline=tps["per-request generate"], target=3.0, mem_ours=mems["ours"], notes=notes, extra=extra),
        Row(model.label, "sample", setting, "tok/s", "generate batched", ours=tps["ours"],
            baseline=tps["batched generate"], target=1.2, mem_ours=mems["ours"],
            mem_baseline=mems["batched generate"], extra=extra),
    ]
    for b in sizes.decode_batches:
        if b == len(rows):  # the same measurement as the batched comparison above
            out.append(Row(model.label, f"decode b={b}", _rows_text(b, n), "tok/s", "generate batched",
                           ours=tps["ours"], baseline=tps["batched generate"], mem_ours=mems["ours"],
                           mem_baseline=mems["batched generate"], extra=dict(same_as="sample")))
        else:
            out.append(_decode(ctx, model, sampler, gen, inputs.decode_rows(prompt_list, b), n))
    out.append(_uneven(ctx, model, sampler, gen, rows, n))
    return out


def _rows_text(rows: int, new_tokens: int) -> str:
    return f"{rows} row{'s' if rows > 1 else ''}, {new_tokens} new tok"


def _decode(ctx: Context, model: BenchModel, sampler: ours.Sampler, gen: baseline.Generator,
            rows: list[list[int]], n: int) -> Row:
    b = len(rows)
    sides = {"ours": lambda: sampler.sample(rows, n),
             "batched generate": ctx.baseline_side(lambda: gen.batched(rows, n))}
    mems = {}
    for name, fn in sides.items():
        ctx.status(f"decode b={b}: {name} (warm-up)")
        out, mems[name] = ctx.first_call(fn)
        _check_lengths(out, n, name)
    times = ctx.time(sides, f"decode b={b}")
    return Row(model.label, f"decode b={b}", _rows_text(b, n), "tok/s", "generate batched",
               ours=b * n / times["ours"].median, baseline=b * n / times["batched generate"].median,
               mem_ours=mems["ours"], mem_baseline=mems["batched generate"],
               extra=dict(seconds={name: t.as_dict() for name, t in times.items()}))


def _uneven(ctx: Context, model: BenchModel, sampler: ours.Sampler, gen: baseline.Generator,
            rows: list[list[int]], n: int) -> Row:
    """The same rows with ``max_tokens`` uniform in [n/16, n]: rows finish at different steps.

    ``generate`` has one length per call, so its rows all run to the longest; ours drops finished
    rows from the decode batch. Tokens/s counts the requested tokens only, for every side; the
    ablation (ours keeping finished rows) is timed alongside.
    """
    low = max(1, n // 16)
    lengths = inputs.lengths(len(rows), low, n, seed=7)
    useful = sum(lengths)

    def ours_kept() -> list[list[int]]:
        with ours.finished_rows_kept():
            return sampler.sample_lengths(rows, lengths)

    sides = {"ours": lambda: sampler.sample_lengths(rows, lengths), "ours, finished rows kept": ours_kept,
             "batched generate": ctx.baseline_side(lambda: gen.batched(rows, max(lengths)))}
    for name, fn in sides.items():
        ctx.status(f"uneven lengths: {name} (warm-up)")
        _check_lengths(fn(), max(lengths) if name == "batched generate" else lengths, name)
    times = ctx.time(sides, "uneven lengths")
    tps = {name: useful / t.median for name, t in times.items()}
    return Row(model.label, "sample, uneven", f"{len(rows)} rows, max_tokens {low}-{n} ({useful:,} tok)", "tok/s",
               "generate batched, all rows to the longest", ours=tps["ours"], baseline=tps["batched generate"],
               notes=[f"{model.name} uneven lengths: ours keeping finished rows in the batch (ablation) makes "
                      f"{tps['ours, finished rows kept']:,.0f} tok/s; dropping them gains "
                      f"{tps['ours'] / tps['ours, finished rows kept']:.2f}x."],
               extra=dict(lengths=lengths, seconds={name: t.as_dict() for name, t in times.items()},
                          tok_s=tps))


# --- multi-LoRA ------------------------------------------------------------------------------
def multi_lora(ctx: Context, model: BenchModel, sizes: Sizes) -> list[Row]:
    """Memory growth from one to ``lora_clients`` clients on one base vs as many peft models."""
    n = sizes.lora_clients
    seqs = inputs.training_batch(4, 32, 64)
    prompt = inputs.prompts(1, 32, 64)[0]
    ours_args = (model.path, seqs, prompt, 16, n, str(ctx.device), ctx.dtype)
    base_args = (model.path, seqs, n, str(ctx.device), ctx.dtype)
    row = Row(model.label, "multi-LoRA", f"{n} clients (rank {ours.LORA_RANK}): 1 train step + 1 sampler each",
              "MB", f"{n} peft models", higher_is_better=False)
    if ctx.probes is not None:
        ctx.status("multi-LoRA: ours (fresh process)")
        o = ctx.probes.run(multilora.ours_clients, *ours_args)
        ctx.status("multi-LoRA: baseline (fresh process)")
        b = ctx.probes.run(multilora.baseline_models, *base_args)
    else:
        ctx.status("multi-LoRA: ours")
        o = multilora.ours_clients(*ours_args)
        free_memory(ctx.device)
        copy_bytes = (model.linear_params + model.vocab * model.hidden) * (torch.finfo(ctx.dtype).bits // 8)
        b = None
        if n * copy_bytes < 0.8 * torch.cuda.mem_get_info(ctx.device)[0]:
            ctx.status("multi-LoRA: baseline")
            b = ctx.on_compute_thread(lambda: multilora.baseline_models(*base_args))
            free_memory(ctx.device)
        else:
            row.notes.append(f"{model.name} multi-LoRA: {n} copies of the base do not fit in free GPU memory; "
                             "no baseline.")
    row.ours, row.baseline = o["growth_mb"], (b["growth_mb"] if b else None)
    row.extra.update(ours=o, baseline=b)
    ratio = o["growth_mb"] / o["clients_state_mb"] if o["clients_state_mb"] else float("nan")
    row.notes.append(
        f"{model.name} multi-LoRA: the {n - 1} clients after the first grew memory by "
        f"{memory.format_mb(o['growth_mb'])}; their own tensors (fp32 adapter, Adam moments, sampler snapshot) "
        f"hold {memory.format_mb(o['clients_state_mb'])} ({ratio:.2f}x); the base is loaded once. Greedy decode of "
        f"the {n} snapshots in one batch gives the same tokens as each alone: "
        f"{'yes' if o['mixed_equals_alone'] else 'NO'} ({o['distinct_outputs']} distinct outputs).")
    return [row]


# --- long context ----------------------------------------------------------------------------
def longctx(ctx: Context, sizes: Sizes) -> tuple[BenchModel, list[Row]]:
    """Peak memory of one ``forward_backward`` over one long sequence (150k vocabulary)."""
    model = ctx.on_compute_thread(lambda: models.get_model("long-context"))
    tokens = sizes.longctx_tokens
    seqs = inputs.training_batch(1, tokens, tokens)
    row = Row(model.label, "longctx", f"1 seq x {tokens:,} tok, forward_backward", "MB", "transformers+peft",
              higher_is_better=False, target=2.0)
    results = {}
    if ctx.probes is not None:
        for side in ("ours", "baseline"):
            ctx.status(f"longctx: {side} (fresh process)")
            results[side] = ctx.probes.run(probe.step_memory, side, model.path, seqs, str(ctx.device), ctx.dtype,
                                           None, False)
            results[side]["memory"] = MemStats(**results[side]["memory"])
    else:
        for side in ("ours", "baseline"):
            ctx.status(f"longctx: {side}")
            results[side] = _longctx_in_process(ctx, model, seqs, side)
            free_memory(ctx.device)
    row.mem_ours, row.mem_baseline = results["ours"]["memory"], results["baseline"]["memory"]
    row.ours, row.baseline = row.mem_ours.peak_delta_mb, row.mem_baseline.peak_delta_mb
    row.extra.update(seconds_ours=results["ours"]["seconds"], seconds_baseline=results["baseline"]["seconds"])
    _loss_check(row, results["ours"]["loss"], results["baseline"]["loss"], ctx.dtype)
    return model, [row]


def _longctx_in_process(ctx: Context, model: BenchModel, seqs: list[list[int]], side: str) -> dict:
    if side == "ours":
        trainer = ours.Trainer(ctx.service, model.path, seqs)
        fb = trainer.forward_backward
    else:
        trainer = ctx.on_compute_thread(lambda: baseline.Trainer(model.path, seqs, ctx.device, ctx.dtype))
        fb = ctx.baseline_side(trainer.forward_backward)
    seconds, (loss, stats) = timing.timed(lambda: memory.measure(fb, ctx.device), ctx.device)
    return dict(memory=stats, seconds=seconds, loss=loss)
