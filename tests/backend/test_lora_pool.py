"""The LoRA slot pool: adapters copied into fixed tensors, freed / evicted / reused slots, growth, full pool."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

from cookbook.backend.local.lora import LoraSpec, new_adapter, wrap_model
from cookbook.backend.local.lora_pool import LoraPool, PoolFullError, SlotRouting

CPU = torch.device("cpu")


class _Toy(nn.Module):
    """One attention, one MLP and the unembedding projection: the three kinds of LoRA targets."""

    def __init__(self) -> None:
        super().__init__()
        self.q_proj, self.up_proj, self.lm_head = nn.Linear(16, 24), nn.Linear(16, 40), nn.Linear(16, 30)


@pytest.fixture
def model() -> nn.Module:
    toy = _Toy()
    wrap_model(toy)
    return toy


def _snapshot(model, seed: int, rank: int = 4, **targets):
    adapter = new_adapter(model, LoraSpec(rank=rank, alpha=8.0, **targets), seed, CPU)
    gen = torch.Generator().manual_seed(seed)
    adapter.load_state_dict({k: torch.randn(v.shape, generator=gen) for k, v in adapter.state_dict().items()})
    return adapter.snapshot(torch.float32)


def _pointers(pool: LoraPool) -> dict[str, tuple[int, int]]:
    return {name: (a.data_ptr(), pool.b[name].data_ptr()) for name, a in pool.a.items()}


def test_adapters_are_copied_in_padded_transposed_and_scaled(model):
    pool = LoraPool(model, CPU, torch.float32, slots=4)
    small, large = _snapshot(model, 1, rank=2), _snapshot(model, 2, rank=6)
    assert pool.slots_for([small, None, large, small]) == [1, 0, 2, 1]
    assert pool.rank == 6
    for name in ("q_proj", "up_proj", "lm_head"):
        a, b = pool.a[name], pool.b[name]
        assert torch.equal(a[1, :2], small.a[name]) and not a[1, 2:].any()
        torch.testing.assert_close(b[1, :2], small.b[name].t() * small.spec.scale)
        assert not b[1, 2:].any()
        assert not a[0].any() and not b[0].any()  # slot 0: the base model


@pytest.mark.parametrize("mode", SlotRouting.MODES)
def test_every_routing_mode_adds_each_rows_own_delta(model, mode):
    pool = LoraPool(model, CPU, torch.float32, slots=4)
    first, second = _snapshot(model, 1, rank=2), _snapshot(model, 2, rank=4, train_mlp=False)
    rows = [first, first] if mode == "shared" else [first, None, second, first]
    row_slots = torch.tensor(pool.slots_for(rows))
    x = torch.randn(len(rows), 1, 16, generator=torch.Generator().manual_seed(0))
    for name in ("q_proj", "up_proj", "lm_head"):
        out = pool.routing(row_slots, mode).apply(name, x, torch.zeros(len(rows), 1, pool.features[name][1]))
        for r, adapter in enumerate(rows):
            expected = torch.zeros(1, pool.features[name][1])
            if adapter is not None and name in adapter.a:
                expected = (x[r] @ adapter.a[name].t()) * adapter.spec.scale @ adapter.b[name].t()
            torch.testing.assert_close(out[r], expected, atol=1e-4, rtol=1e-5)  # deltas of ~30: fp32 rounding


def test_freed_slots_are_reused_and_the_least_recently_used_is_evicted(model):
    pool = LoraPool(model, CPU, torch.float32, slots=3, max_slots=3)  # two adapter slots
    a, b, c, d = (_snapshot(model, seed) for seed in range(4))
    assert pool.slots_for([a, b]) == [1, 2]
    pointers, version = _pointers(pool), pool.version

    del a
    gc.collect()
    assert pool.slots_for([c]) == [1]  # a's slot is free: c takes it, b stays resident
    assert pool._owner(2) is b
    assert pool.slots_for([b]) == [2]
    assert pool.slots_for([d]) == [1]  # all alive: c (used before b) is evicted
    assert pool.slots_for([c]) == [2]  # and comes back in place of b, now the least recently used
    torch.testing.assert_close(pool.b["q_proj"][2, :4], c.b["q_proj"].t() * c.spec.scale)

    with pytest.raises(PoolFullError):
        pool.slots_for([b, c, d])
    assert _pointers(pool) == pointers and pool.version == version  # loading never reallocated


def test_the_pool_grows_for_a_larger_rank_new_modules_and_more_adapters(model):
    pool = LoraPool(model, CPU, torch.float32, slots=2, max_slots=4)
    attn = _snapshot(model, 1, rank=2, train_mlp=False, train_unembed=False)
    assert pool.slots_for([attn]) == [1]
    assert set(pool.a) == {"q_proj"} and pool.rank == 2
    version = pool.version

    mlp = _snapshot(model, 2, rank=8, train_attn=False, train_unembed=False)
    assert pool.slots_for([attn, mlp]) == [1, 2]
    assert pool.version > version and pool.num_slots == 4 and pool.rank == 8
    assert set(pool.a) == {"q_proj", "up_proj"}
    assert torch.equal(pool.a["q_proj"][1, :2], attn.a["q_proj"]) and not pool.a["q_proj"][1, 2:].any()
    assert not pool.a["up_proj"][1].any() and not pool.a["q_proj"][2].any()  # modules an adapter does not train

    with pytest.raises(PoolFullError):
        pool.slots_for([_snapshot(model, seed) for seed in range(3, 7)])  # 4 adapters, 3 slots at most
