"""Micro-batch planning for ``forward_backward``: what fits in the device's free memory.

A training pass keeps, for every token of a micro-batch, the activations its backward needs: a
few hidden-size vectors, the attention projections and the MLP's intermediate vectors of each
decoder layer. :func:`activation_cost` estimates those bytes per token from the model's config
(checked against the tensors autograd really saves, in tests/backend/test_memory_plan.py). With
decoder layers recomputed in backward (activation checkpointing) a token keeps only each layer's
input, plus one layer's activations while that layer is recomputed.

:func:`plan` splits a batch into length-sorted micro-batches whose padded size fits both the
engine's token cap (a speed setting) and the free memory; sequences too long to fit without
checkpointing get their own micro-batches with checkpointing on. A sequence that does not fit even
then is rejected when the request is submitted (:class:`errors.OutOfMemoryError`). Packed rows
(``document_ids``: several documents each, which run as separate sequences) are grouped by their
tokens instead (:func:`group`), their documents' passes planned when the micro-batch runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import errors

# Use at most this fraction of the free memory for one micro-batch's activations: the allocator
# fragments, and backward needs transient buffers of its own.
HEADROOM = 0.7
# What one more micro-batch costs, in padded tokens, when a batch is split to save padding
# (:func:`micro_batches`), per device type. CPU: measured on the tiny model (32 sequences of 16-384
# tokens, 2 cores), 64-128 gave the fastest steps (1.6x faster than one padded micro-batch). CUDA:
# small micro-batches leave the GPU idle; large until measured there. COOKBOOK_MICRO_BATCH_OVERHEAD
# overrides both (for measurements).
MICRO_BATCH_OVERHEAD_TOKENS = {"cpu": 128, "cuda": 4096}
DEFAULT_OVERHEAD_TOKENS = 4096


def overhead_tokens(device: torch.device) -> int:
    """The per-micro-batch overhead, in tokens, that :func:`micro_batches` weighs on ``device``."""
    override = os.environ.get("COOKBOOK_MICRO_BATCH_OVERHEAD")
    if override:
        return int(override)
    return MICRO_BATCH_OVERHEAD_TOKENS.get(device.type, DEFAULT_OVERHEAD_TOKENS)


@dataclass(frozen=True)
class ActivationCost:
    per_token: int  # bytes kept for backward per token, every layer's activations
    per_token_checkpointed: int | None  # the same with decoder layers recomputed (None: not supported)
    reserve: int  # bytes independent of the micro-batch's size (logit chunks and the like)


@dataclass(frozen=True)
class MicroBatch:
    indices: list[int]
    checkpointed: bool
    tokens: int  # the padded tokens its passes may hold together (the cap it was planned under)


def activation_cost(config, dtype: torch.dtype, *, logits_bytes: int, checkpointing_supported: bool,
                    device_type: str = "cpu") -> ActivationCost:
    """Bytes per token that a Llama-family decoder keeps for backward (a conservative estimate).

    Per layer: the inputs and outputs of the two norms and the residual stream (~6 hidden vectors),
    queries before and after their norm and rotary, the attention output (4 query widths), keys and
    values in the same steps (4 key/value widths), and the MLP's gate, up, activation and product
    plus the down projection's input (5 intermediate widths). On CUDA in fp32, 7 more hidden
    widths: on an H200 (the tiny model) autograd kept 1,788 values per token and layer more than on
    the CPU (116,608 against 88,000 bytes per token), which the CPU count missed; in bf16 the same
    run stayed within the count.
    """
    hidden = _field(config, "hidden_size", "n_embd", "d_model")
    layers = _field(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _field(config, "num_attention_heads", "n_head")
    intermediate = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    per_layer = 6 * hidden + 4 * heads * head_dim + 4 * kv_heads * head_dim + 5 * intermediate
    if device_type == "cuda" and dtype == torch.float32:
        per_layer += 7 * hidden
    size = dtype.itemsize
    full = (layers * per_layer + hidden) * size
    checkpointed = ((layers + 1) * hidden + per_layer) * size if checkpointing_supported else None
    return ActivationCost(full, checkpointed, logits_bytes)


def _field(config, *names: str) -> int:
    for name in names:
        value = getattr(config, name, None)
        if value:
            return int(value)
    raise ValueError(f"{type(config).__name__} has none of {names}: cannot estimate activation memory")


def free_memory(device: torch.device) -> int:
    """Bytes that a new allocation on ``device`` can use now."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # memory this process's caching allocator holds but does not use is free for us too
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Budget:
    """Padded tokens one micro-batch may hold, without and with checkpointing (0: nothing fits)."""

    tokens: int
    tokens_checkpointed: int
    always_checkpoint: bool
    cost: ActivationCost
    free_bytes: int

    @classmethod
    def of(cls, cost: ActivationCost, free_bytes: int, cap_tokens: int, always_checkpoint: bool) -> "Budget":
        usable = max(0, int(free_bytes * HEADROOM) - cost.reserve)
        checkpointed = usable // cost.per_token_checkpointed if cost.per_token_checkpointed else 0
        full = 0 if always_checkpoint else usable // cost.per_token
        return cls(min(cap_tokens, full), min(cap_tokens, checkpointed), always_checkpoint, cost, free_bytes)

    @property
    def longest(self) -> int:
        return max(self.tokens, self.tokens_checkpointed)

    def check(self, lengths: Sequence[int]) -> None:
        """Reject a batch with a sequence that no micro-batch can hold (before any state changes)."""
        too_long = [(i, n) for i, n in enumerate(lengths) if n > self.longest]
        if too_long:
            i, n = max(too_long, key=lambda x: x[1])
            per_token = self.cost.per_token_checkpointed or self.cost.per_token
            raise errors.OutOfMemoryError(
                f"data[{i}] has {n} tokens; about {_gib(n * per_token + self.cost.reserve)} of activation memory "
                f"would be needed even with activation checkpointing, {_gib(self.free_bytes)} is free "
                f"(at most {self.longest} tokens fit): shorten or split the sequence, or free device memory")


def plan(lengths: Sequence[int], budget: Budget, overhead: int,
         packed: Sequence[bool] | None = None) -> list[MicroBatch]:
    """Micro-batches that fit ``budget`` (:func:`group`); long sequences get checkpointed ones."""
    if budget.always_checkpoint:
        return [MicroBatch(b, True, budget.tokens_checkpointed)
                for b in group(lengths, budget.tokens_checkpointed, overhead, packed)]
    out = []
    for checkpointed, cap in ((False, budget.tokens), (True, budget.tokens_checkpointed)):
        part = [i for i, n in enumerate(lengths) if (n > budget.tokens) == checkpointed]
        flags = None if packed is None else [packed[i] for i in part]
        batches = group([lengths[i] for i in part], cap, overhead, flags)
        out += [MicroBatch([part[j] for j in b], checkpointed, cap) for b in batches]
    return out


def group(lengths: Sequence[int], token_budget: int, overhead: int,
          packed: Sequence[bool] | None = None) -> list[list[int]]:
    """Micro-batches of the sequences ``lengths``: plain ones by :func:`micro_batches`; packed ones (rows
    of several documents, which run as their documents, so a row's own length pads nothing) in runs
    whose tokens together fit the budget (a row over the budget alone), the documents' passes being
    planned when the micro-batch runs (:func:`piece_passes`)."""
    flags = packed if packed is not None else [False] * len(lengths)
    plain = [i for i, f in enumerate(flags) if not f]
    out = [[plain[j] for j in b] for b in micro_batches([lengths[i] for i in plain], token_budget, overhead)]
    run: list[int] = []
    filled = 0  # the run's tokens
    for i in (i for i, f in enumerate(flags) if f):
        if run and filled + lengths[i] > token_budget:
            out.append(run)
            run, filled = [], 0
        run.append(i)
        filled += lengths[i]
    return out + ([run] if run else [])


def piece_passes(lengths: Sequence[int], token_budget: int, overhead: int) -> list[list[int]]:
    """Forward passes over a micro-batch's documents: length-sorted runs (:func:`micro_batches`) whose
    padded tokens together stay within ``token_budget``, since every pass's activations are kept until
    the micro-batch's backward. When the cheapest split pads past it, a smaller per-pass overhead is
    weighed (more, tighter passes); at overhead 0 the passes pad nothing beyond equal lengths."""
    for weight in (overhead, overhead // 4, overhead // 16, 0):
        passes = micro_batches(lengths, token_budget, weight)
        if sum(len(p) * max(lengths[i] for i in p) for p in passes) <= token_budget:
            break
    return passes


def micro_batches(lengths: Sequence[int], token_budget: int, overhead: int) -> list[list[int]]:
    """Group indices into micro-batches of similar length whose padded size fits the budget.

    The length-sorted sequences are cut into runs that minimise the padded tokens computed plus
    ``overhead`` tokens per micro-batch (what one more forward/backward costs beside its tokens,
    :func:`overhead_tokens`): one big micro-batch pads every sequence to the longest, many small
    ones pay the overhead many times. Order inside the result is by length.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    sorted_lengths = [max(1, lengths[i]) for i in order]
    n = len(order)
    # cost[j]: the cheapest split of the first j sorted sequences; cut[j]: where its last run starts
    cost, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        longest = sorted_lengths[j - 1]
        for i in range(j - 1, -1, -1):
            padded = longest * (j - i)
            if padded > token_budget and i < j - 1:
                break
            total = cost[i] + padded + overhead
            if total < cost[j]:
                cost[j], cut[j] = total, i
    batches: list[list[int]] = []
    j = n
    while j > 0:
        batches.append(order[cut[j]: j])
        j = cut[j]
    return batches[::-1]


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
