"""Many LoRA clients on one base model: how much memory each further client costs.

Ours: one service, ``n`` training clients (rank 32) on the same base; each runs one training
step (``forward_backward`` + ``optim_step``) and takes a sampling snapshot, then all ``n``
snapshots decode greedily in one coalesced batch, and every snapshot decodes alone once more: the
tokens must be the same. The baseline is what a user without multi-LoRA runs: ``n`` separate
``peft`` models, each with its own copy of the base, each taking the same training step.

Memory is what the process holds (CUDA: allocated tensors; CPU: resident set size) after the
first client has done all of its work, and after all ``n`` have: the difference is the cost of
the ``n - 1`` further clients. For ours it is compared with the bytes those clients' own tensors
take (adapter weights, Adam moments, sampler snapshot): "grows by the adapters only" means the
two agree.
"""

from __future__ import annotations

import gc
from pathlib import Path

import torch
from tinker import types

from . import baseline, ours
from .memory import MB, current_rss_bytes

STEP = types.AdamParams(learning_rate=1e-2)  # large, so that the adapters differ after one step


def held_mb(device: torch.device) -> float:
    """Memory the process holds now (after a garbage collection)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device) / MB
    return current_rss_bytes() / MB


def _tensor_mb(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / MB


def ours_clients(model_dir: Path, seqs: list[list[int]], prompt: list[int], new_tokens: int, n: int,
                 device: str, dtype: torch.dtype) -> dict:
    dev = torch.device(device)
    service = ours.service_client(dev, dtype)
    data = ours.datums(seqs)
    greedy = types.SamplingParams(max_tokens=new_tokens, temperature=0.0, stop=[])
    clients, samplers = [], []

    def add_client(seed: int) -> None:
        tc = service.create_lora_training_client(base_model=str(model_dir), rank=ours.LORA_RANK, seed=seed)
        tc.forward_backward(data, "cross_entropy")
        tc.optim_step(STEP).result()
        clients.append(tc)
        samplers.append(tc.save_weights_and_get_sampling_client())

    def decode_alone(sampler) -> list[int]:
        return list(sampler.sample(types.ModelInput.from_ints(prompt), 1, greedy).result().sequences[0].tokens)

    add_client(0)
    decode_alone(samplers[0])
    first = held_mb(dev)
    for seed in range(1, n):
        add_client(seed)
    futures = [s.sample(types.ModelInput.from_ints(prompt), 1, greedy) for s in samplers]  # one batch
    mixed = [list(f.result().sequences[0].tokens) for f in futures]
    alone = [decode_alone(s) for s in samplers]
    after = held_mb(dev)

    per_client = []
    for tc, sc in zip(clients[1:], samplers[1:]):
        adam = [t for state in tc._optimizer.state.values() for t in state.values()
                if torch.is_tensor(t) and t.dim() > 0]
        per_client.append(_tensor_mb(tc.adapter.parameters()) + _tensor_mb(adam) + _tensor_mb(sc.adapter.parameters()))
    return dict(first_mb=first, after_mb=after, growth_mb=after - first, clients_state_mb=sum(per_client),
                adapter_mb=_tensor_mb(clients[0].adapter.parameters()),
                mixed_equals_alone=mixed == alone, distinct_outputs=len({tuple(t) for t in mixed}),
                decode_batches=int(service.engine.stats["sample_batches"]))


def baseline_models(model_dir: Path, seqs: list[list[int]], n: int, device: str, dtype: torch.dtype) -> dict:
    dev = torch.device(device)
    trainers = [baseline.Trainer(model_dir, seqs, dev, dtype)]
    trainers[0].step()
    first = held_mb(dev)
    for _ in range(1, n):
        trainers.append(baseline.Trainer(model_dir, seqs, dev, dtype))
        trainers[-1].step()
    after = held_mb(dev)
    return dict(first_mb=first, after_mb=after, growth_mb=after - first)
