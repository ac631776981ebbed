"""Our side of every comparison: the local backend, driven only through the Tinker API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tinker import types

import cookbook
from cookbook.backend.local import sampler as local_sampler

LORA_RANK = 32  # the backend's LoRA: attention + MLP + lm_head, alpha 32
ADAM = types.AdamParams(learning_rate=1e-4)  # betas (0.9, 0.95), eps 1e-12, no decay, no clipping


def service_client(device: torch.device, dtype: torch.dtype) -> Any:
    return cookbook.service_client("local", device=str(device), dtype=dtype)


def datums(seqs: list[list[int]]) -> list[types.Datum]:
    """Next-token cross-entropy datums: input ``s[:-1]``, targets ``s[1:]``, weight 1 each."""
    return [
        types.Datum(model_input=types.ModelInput.from_ints(s[:-1]),
                    loss_fn_inputs=dict(target_tokens=s[1:], weights=[1.0] * (len(s) - 1)))
        for s in seqs
    ]


class Trainer:
    """One LoRA training client and a fixed batch."""

    def __init__(self, service: Any, model_dir: Path, seqs: list[list[int]], seed: int = 0) -> None:
        self.client = service.create_lora_training_client(base_model=str(model_dir), rank=LORA_RANK, seed=seed)
        self.data = datums(seqs)

    def forward_backward(self) -> float:
        """One ``forward_backward``; returns the summed loss."""
        return float(self.client.forward_backward(self.data, "cross_entropy").result().metrics["loss:sum"])

    def step(self) -> float:
        """``forward_backward`` + ``optim_step`` (both submitted before waiting, as a loop would)."""
        fb = self.client.forward_backward(self.data, "cross_entropy")
        opt = self.client.optim_step(ADAM)
        loss = float(fb.result().metrics["loss:sum"])
        opt.result()
        return loss

    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.client.adapter.parameters())  # reporting only


class Sampler:
    """A base-model sampling client (no adapter), so it decodes the baseline's exact weights."""

    def __init__(self, service: Any, model_dir: Path) -> None:
        self.client = service.create_sampling_client(base_model=str(model_dir))
        engine = getattr(service, "engine", None)  # local backend only; used for reporting
        self._stats = engine.stats if engine is not None else None

    def sample(self, rows: list[list[int]], new_tokens: int, seed: int = 0) -> list[list[int]]:
        """One ``sample(num_samples=1)`` call per row, all submitted before any result is read."""
        return self.sample_lengths(rows, [new_tokens] * len(rows), seed)

    def sample_lengths(self, rows: list[list[int]], lengths: list[int], seed: int = 0) -> list[list[int]]:
        """As :meth:`sample`, with its own ``max_tokens`` for every row."""
        futures = [
            self.client.sample(types.ModelInput.from_ints(row), num_samples=1,
                               sampling_params=types.SamplingParams(max_tokens=n, temperature=1.0,
                                                                    stop=[], seed=seed + i))
            for i, (row, n) in enumerate(zip(rows, lengths))
        ]
        return [list(f.result().sequences[0].tokens) for f in futures]

    def decode_batches(self) -> int:
        """How many decode batches the engine has run so far (to see how calls were coalesced)."""
        return int(self._stats["sample_batches"]) if self._stats is not None else -1


@contextlib.contextmanager
def finished_rows_kept() -> Iterator[None]:
    """Ablation: the local sampler keeps finished rows in the decode batch to the end."""
    previous = local_sampler.COMPACT_FINISHED_FRACTION
    local_sampler.COMPACT_FINISHED_FRACTION = float("inf")  # never reached
    try:
        yield
    finally:
        local_sampler.COMPACT_FINISHED_FRACTION = previous
