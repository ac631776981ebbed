"""Decoding with fixed-shape tensors, so that the single-token step can be captured as a CUDA graph.

The eager decoder (``sampler``) grows its KV cache and reshapes the batch as rows finish, so every
step has new shapes and launches a few hundred kernels from Python: on a GPU the launches cost
more than the arithmetic. Here the rows of a decode batch are padded to a bucket (1, 2, 4, 8, ...
rows; padding rows are dead rows whose outputs are ignored) and each bucket owns fixed buffers:

- a KV cache of ``capacity`` positions per row, allocated once (zeros) and reused by later
  batches (reallocated only when a batch needs more positions);
- the step's inputs as device tensors: each row's token, its cache length (which is also the new
  token's position) and its LoRA slot (``lora_pool``);
- the step's output, the logits.

The step is :class:`decode_step.DecodeStep` (the model's own modules in a straight line) over
this cache, with the slot pool's LoRA deltas, plus the ``lm_head``: it writes each row's new keys
and values at the row's own position (``scatter_``) and attends to the first ``window`` positions
masked by each row's length. Windows are powers of two (at least ``MIN_WINDOW``), so attention
reads about what is filled, not the whole capacity. Every tensor of the step has a fixed shape
per (bucket, window, LoRA mode) and nothing is read back to the host, so on CUDA the step is
captured once per such key with ``torch.cuda.CUDAGraph`` and replayed (falling back to running
it eagerly, with one warning, if capture fails); on CPU the same step runs eagerly. The step does
not advance the lengths itself (the caller does, after it), so the warm-up runs before a capture
only rewrite what the captured step rewrites.

Token choice stays outside the step, in ``sampler``: each request draws from its own random
generator, so a seed reproduces a request whatever it is batched with.

Imports ``decode_step``, ``lora``, ``lora_pool`` and ``memory``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from . import memory
from .decode_step import DecodeStep
from .lora import Adapter, use_adapters, use_slots
from .lora_pool import LoraPool, PoolFullError

log = logging.getLogger(__name__)

MIN_WINDOW = 64  # smallest attention window (cache positions read by one step)
# A bucket's buffers may take at most this fraction of the memory that is free when they are allocated.
CACHE_MEMORY_FRACTION = 0.5
WARMUP_STEPS = 2  # eager runs on a side stream before a capture (lazy initialisations happen there)
# Device types on which the sampler decodes through this path. CPU keeps the eager decoder: the
# static step measured slower there (bench/static_decode.py), and no graph capture pays for it.
DEVICE_TYPES = frozenset({"cuda"})


def bucket_size(rows: int) -> int:
    """The smallest power of two >= ``rows``."""
    return 1 << max(rows - 1, 0).bit_length()


def _window(positions: int, capacity: int) -> int:
    return min(capacity, max(MIN_WINDOW, bucket_size(positions)))


class _Bucket:
    """The fixed buffers of one batch-size bucket and the graphs captured over them."""

    def __init__(self, size: int, capacity: int, decoder: "StaticDecoder") -> None:
        self.size, self.capacity = size, capacity
        device, shape = decoder.device, (size, decoder.step.kv_heads, capacity, decoder.step.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=decoder.dtype) for _ in range(decoder.num_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=decoder.dtype) for _ in range(decoder.num_layers)]
        self.tokens = torch.zeros(size, dtype=torch.long, device=device)
        self.lengths = torch.zeros(size, dtype=torch.long, device=device)  # cached positions per row
        self.slots = torch.zeros(size, dtype=torch.long, device=device)
        self.logits = torch.zeros(size, decoder.vocab_size, dtype=torch.float32, device=device)
        self.positions = torch.arange(capacity, device=device)
        self.graphs: dict[tuple[int, str], torch.cuda.CUDAGraph] = {}
        self.pool_version = -1  # the LoRA pool's version the graphs were captured with

    @staticmethod
    def num_bytes(size: int, capacity: int, decoder: "StaticDecoder") -> int:
        step = decoder.step
        kv = 2 * decoder.num_layers * size * step.kv_heads * capacity * step.head_dim * decoder.dtype.itemsize
        return kv + size * decoder.vocab_size * 4


class _LayerWindow:
    """One layer's cache as :class:`DecodeStep` uses it: ``update`` writes the step, returns the window."""

    __slots__ = ("keys", "values", "index", "window")

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, index: torch.Tensor, window: int) -> None:
        self.keys, self.values, self.index, self.window = keys, values, index, window

    def update(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys.scatter_(2, self.index, key)
        self.values.scatter_(2, self.index, value)
        return self.keys[:, :, : self.window], self.values[:, :, : self.window]


class _CacheWindow:
    """What :class:`DecodeStep` uses of a transformers ``Cache``: ``layers``, each with ``update``."""

    def __init__(self, bucket: _Bucket, window: int) -> None:
        k = bucket.keys[0]
        index = bucket.lengths[:, None, None, None].expand(k.shape[0], k.shape[1], 1, k.shape[3])
        self.layers = [_LayerWindow(k, v, index, window) for k, v in zip(bucket.keys, bucket.values)]


class StaticDecoder:
    """Per base model: the buckets' buffers, the LoRA slot pool and the captured step graphs."""

    def __init__(self, model: Any, step: DecodeStep, device: torch.device, dtype: torch.dtype, *,
                 capture: bool | None = None, pool: LoraPool | None = None, compile_step: bool = False) -> None:
        self.lm_head = model.get_output_embeddings()  # the LoRA-wrapped unembedding
        self.step, self.device, self.dtype = step, device, dtype
        self.num_layers = len(model.get_decoder().layers)
        self.vocab_size = int(self.lm_head.base.out_features)
        self.capture = device.type == "cuda" if capture is None else capture
        self.pool = pool or LoraPool(model, device, dtype)
        self.buckets: dict[int, _Bucket] = {}
        self._graph_pool: Any = None  # the CUDA graphs' shared memory pool, made at the first capture
        # compile_step: the step through torch.compile (fused kernels), captured like the eager one.
        # Off by default: an ablation (bench/static_decode.py --compile) until a GPU run shows it pays.
        self._step_fn = torch.compile(self._step_eager) if compile_step else self._step_eager

    @classmethod
    def for_model(cls, model: nn.Module, step: DecodeStep | None, device: torch.device,
                  dtype: torch.dtype) -> "StaticDecoder | None":
        """The sampler's static decoder, or None (unsupported architecture, or a device that keeps eager decoding)."""
        if step is None or device.type not in DEVICE_TYPES:
            return None
        return cls(model, step, device, dtype)

    def begin(self, row_adapters: Sequence[Adapter | None], positions: int) -> "StaticDecoding | None":
        """Buffers and LoRA slots for a batch of rows needing ``positions`` cache positions each
        (prompt + new tokens), or None when the pool or the free memory cannot take the batch."""
        try:
            slots = self.pool.slots_for(row_adapters)
        except PoolFullError as exc:
            log.info("static decoding skipped: %s", exc)
            return None
        bucket = self._bucket(bucket_size(len(slots)), positions)
        return None if bucket is None else StaticDecoding(self, bucket, slots, positions)

    def _bucket(self, size: int, positions: int) -> _Bucket | None:
        bucket = self.buckets.get(size)
        if bucket is not None and bucket.capacity >= positions:
            return bucket
        self.buckets.pop(size, None)
        capacity = max(MIN_WINDOW, bucket_size(positions))
        need = _Bucket.num_bytes(size, capacity, self)
        if need > CACHE_MEMORY_FRACTION * memory.free_memory(self.device):
            self.buckets.clear()  # other buckets' buffers (those no decoding holds) go first
            if need > CACHE_MEMORY_FRACTION * memory.free_memory(self.device):
                log.info("static decoding skipped: %d bytes of buffers do not fit", need)
                return None
        bucket = self.buckets[size] = _Bucket(size, capacity, self)
        return bucket

    def run(self, bucket: _Bucket, window: int, mode: str) -> None:
        """One step of every row of ``bucket``: reads its tokens, lengths and slots, writes its logits."""
        if self.capture:
            if bucket.pool_version != self.pool.version:  # the pool's tensors were reallocated
                bucket.graphs.clear()
                bucket.pool_version = self.pool.version
            graph = bucket.graphs.get((window, mode))
            if graph is None:
                try:
                    graph = bucket.graphs[window, mode] = self._capture(bucket, window, mode)
                except Exception as exc:  # noqa: BLE001 - any failure: decode eagerly from now on
                    log.warning("CUDA graph capture of the decode step failed; decoding without graphs: %s", exc)
                    self.capture = False
            if graph is not None:
                graph.replay()
                return
        self._forward(bucket, window, mode)

    def _forward(self, bucket: _Bucket, window: int, mode: str) -> None:
        routing = use_adapters(None) if mode == "base" else use_slots(self.pool.routing(bucket.slots, mode))
        with routing:
            self._step_fn(bucket, window)

    def _step_eager(self, bucket: _Bucket, window: int) -> None:
        mask = (bucket.positions[:window] <= bucket.lengths[:, None])[:, None, None, :]
        hidden = self.step(bucket.tokens, bucket.lengths[:, None], _CacheWindow(bucket, window), mask)
        bucket.logits.copy_(self.lm_head(hidden))

    def _capture(self, bucket: _Bucket, window: int, mode: str) -> torch.cuda.CUDAGraph:
        # All graphs share one memory pool: they only keep intermediates there (inputs and outputs
        # are the bucket's buffers, allocated outside any graph) and replay one at a time on one stream.
        if self._graph_pool is None:
            self._graph_pool = torch.cuda.graph_pool_handle()
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._forward(bucket, window, mode)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: CUDA calls from other threads (the user's own torch work) may go on meanwhile
        with torch.cuda.graph(graph, pool=self._graph_pool, capture_error_mode="thread_local"):
            self._forward(bucket, window, mode)
        return graph


class StaticDecoding:
    """The rows of one ``sample_batch`` call on the static path: prefill in, one step at a time, fewer rows."""

    def __init__(self, decoder: StaticDecoder, bucket: _Bucket, slots: list[int], positions: int) -> None:
        self.decoder, self.positions = decoder, positions
        self.filled = 0  # cached positions of the longest row (host-side: no sync to pick the window)
        self._use(bucket, slots)

    def _use(self, bucket: _Bucket, slots: list[int]) -> None:
        self.bucket, self.rows, self.slots = bucket, len(slots), slots
        distinct = set(slots)
        if distinct == {0}:
            self.mode = "base"
        elif len(distinct) == 1:
            self.mode = "shared"
        else:
            self.mode = "dense" if bucket.size >= self.decoder.pool.num_slots else "gather"
        padded = slots + [slots[0]] * (bucket.size - len(slots))  # padding rows: any slot in use
        bucket.slots.copy_(torch.tensor(padded))
        bucket.tokens.zero_()
        bucket.lengths[len(slots):] = 0

    def load_prefill(self, layers: Sequence[tuple[torch.Tensor, torch.Tensor]], row_prompt: torch.Tensor,
                     prompt_lengths: Sequence[int]) -> None:
        """Each row's cache from the prefill of left-padded prompts: ``layers`` holds each layer's
        keys and values [prompts, kv_heads, width, head_dim]; row r's prompt is ``row_prompt[r]``.
        The prompt moves to positions 0 .. length - 1 of the row."""
        bucket, rows, device = self.bucket, self.rows, self.bucket.lengths.device
        width = layers[0][0].shape[2]
        lengths = torch.as_tensor(prompt_lengths, device=device)
        shift = (torch.arange(width, device=device)[None, :] + (width - lengths)[:, None]).clamp_(max=width - 1)
        k0 = bucket.keys[0]
        index = shift[:, None, :, None].expand(rows, k0.shape[1], width, k0.shape[3])
        for (keys, values), k_buf, v_buf in zip(layers, bucket.keys, bucket.values):
            k_buf[:rows, :, :width] = keys.index_select(0, row_prompt).gather(2, index)
            v_buf[:rows, :, :width] = values.index_select(0, row_prompt).gather(2, index)
        bucket.lengths[:rows] = lengths
        self.filled = int(max(prompt_lengths))

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row ([rows]); returns the next logits [rows, vocab] (a view of a buffer
        the next step overwrites)."""
        bucket = self.bucket
        if self.filled >= bucket.capacity:
            raise RuntimeError(f"static decoding past its {bucket.capacity} cache positions")
        bucket.tokens[: self.rows].copy_(tokens)
        self.decoder.run(bucket, _window(self.filled + 1, bucket.capacity), self.mode)
        bucket.lengths[: self.rows] += 1
        self.filled += 1
        return bucket.logits[: self.rows]

    def keep(self, keep: np.ndarray) -> bool:
        """Keep only rows ``keep`` (positions among the current rows), moving them to a smaller
        bucket; False (nothing changes) when they need as large a bucket as now or memory is short."""
        size = bucket_size(len(keep))
        if size >= self.bucket.size:
            return False
        target = self.decoder._bucket(size, self.positions)
        if target is None:
            return False
        source, n, filled = self.bucket, len(keep), self.filled
        sel = torch.as_tensor(keep, device=source.lengths.device)
        for src, dst in zip(source.keys + source.values, target.keys + target.values):
            dst[:n, :, :filled] = src[:, :, :filled].index_select(0, sel)
        target.lengths[:n] = source.lengths.index_select(0, sel)
        self._use(target, [self.slots[i] for i in keep])
        return True

    def close(self) -> None:
        """Nothing to release: the buffers stay with the decoder for the next batch."""
