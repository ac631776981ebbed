"""A pool of device slots holding LoRA adapters, so one fixed-shape decode step serves any mix of them.

Per target module the pool holds ``A`` [slots, max_rank, in] and ``B`` [slots, max_rank, out] (the
adapter's [out, rank] stored transposed, so both LoRA products are plain matmuls over views),
zero-padded to the largest rank, with each slot's scale (alpha / rank) folded into its ``B``. Slot
0 is the base model: zeros. A decode step routes each batch row to a slot through a device tensor
of slot indices (:meth:`LoraPool.routing`, activated with :func:`lora.use_slots`), so a CUDA graph
captured once serves every mix of adapters and the base model.

Slots are assigned at the start of a decode batch (:meth:`LoraPool.slots_for`). Loading an
adapter copies it into the pool's existing tensors (no new allocation: captured graphs stay
valid). An adapter keeps its slot while it is alive; the slot of an adapter that has been garbage
collected is free, and when no slot is free the least recently used adapter that the batch does
not need is evicted (it is copied in again if it comes back). Adapters given to the pool are
frozen sampler snapshots: a resident adapter is not copied again. The pool is reallocated only when
a batch needs a larger rank, a module no adapter in it targeted yet, or more slots (doubling up to
``max_slots``); ``version`` then changes, and graphs captured over the old tensors must be
captured again. A batch with more distinct adapters than ``max_slots - 1`` raises
:class:`PoolFullError` (the sampler then decodes that batch through the per-row routing of ``lora``).

Imports only ``lora``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import nn

from .lora import Adapter, LoRALinear

DEFAULT_SLOTS = 8  # base + 7 adapters before the first growth
MAX_SLOTS = 64


class PoolFullError(RuntimeError):
    """A batch needs more distinct adapters than the pool can hold."""


class LoraPool:
    def __init__(self, model: nn.Module, device: torch.device, dtype: torch.dtype, *, slots: int = DEFAULT_SLOTS,
                 max_slots: int = MAX_SLOTS) -> None:
        if not 2 <= slots <= max_slots:
            raise ValueError(f"a LoRA pool needs 2 <= slots <= max_slots, got {slots} and {max_slots}")
        self.device, self.dtype = device, dtype
        self.max_slots = max_slots
        self.features = {name: (m.base.in_features, m.base.out_features)
                         for name, m in model.named_modules() if isinstance(m, LoRALinear)}
        self.num_slots, self.rank = slots, 0
        self.a: dict[str, torch.Tensor] = {}  # module name -> [slots, rank, in]
        self.b: dict[str, torch.Tensor] = {}  # module name -> [slots, rank, out], scale folded in
        self.version = 0  # changes whenever the tensors above are reallocated
        self._owners: list[weakref.ref | None] = [None] * slots  # slot 0 (the base model) has none
        self._last_used = [0] * slots
        self._clock = 0
        self._slot_ids = torch.arange(slots, device=device)

    def slots_for(self, adapters: Sequence[Adapter | None]) -> list[int]:
        """The slot of each entry (0 for None), loading the adapters that are not resident yet."""
        distinct = list({id(a): a for a in adapters if a is not None}.values())
        self._fit(distinct)
        self._clock += 1
        resident = {id(a): s for s in range(1, self.num_slots) if (a := self._owner(s)) is not None}
        missing = [a for a in distinct if id(a) not in resident]
        if missing:
            needed = {resident[id(a)] for a in distinct if id(a) in resident}
            spare = [s for s in range(1, self.num_slots) if s not in needed]
            spare.sort(key=lambda s: (self._owner(s) is not None, self._last_used[s]))  # free first, then LRU
            for adapter, slot in zip(missing, spare):
                self._load(slot, adapter)
                resident[id(adapter)] = slot
        for adapter in distinct:
            self._last_used[resident[id(adapter)]] = self._clock
        return [0 if a is None else resident[id(a)] for a in adapters]

    def routing(self, row_slots: torch.Tensor, mode: str) -> "SlotRouting":
        """The LoRA deltas of a batch whose rows use ``row_slots`` (a device tensor, one slot per row)."""
        return SlotRouting(self, row_slots, mode)

    def num_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.a.values(), *self.b.values()))

    def _owner(self, slot: int) -> Adapter | None:
        ref = self._owners[slot]
        return None if ref is None else ref()

    def _fit(self, adapters: list[Adapter]) -> None:
        """Reallocate when the batch needs a larger rank, new modules or more slots than the pool has."""
        rank = max([self.rank, *(a.spec.rank for a in adapters)])
        names = set(self.a).union(*(a.a for a in adapters))
        unknown = names - set(self.features)
        if unknown:
            raise ValueError(f"adapter modules {sorted(unknown)[:3]} are not LoRA modules of this model")
        slots = self.num_slots
        while slots - 1 < len(adapters) and slots < self.max_slots:
            slots = min(2 * slots, self.max_slots)
        if slots - 1 < len(adapters):
            raise PoolFullError(f"{len(adapters)} distinct adapters in one batch; the LoRA pool holds "
                                f"{self.max_slots - 1}")
        if rank == self.rank and slots == self.num_slots and names == set(self.a):
            return
        for name in sorted(names):
            fan_in, fan_out = self.features[name]
            self.a[name] = self._grown(self.a.get(name), slots, rank, fan_in)
            self.b[name] = self._grown(self.b.get(name), slots, rank, fan_out)
        self._owners += [None] * (slots - self.num_slots)
        self._last_used += [0] * (slots - self.num_slots)
        self.num_slots, self.rank = slots, rank
        self._slot_ids = torch.arange(slots, device=self.device)
        self.version += 1

    def _grown(self, old: torch.Tensor | None, slots: int, rank: int, width: int) -> torch.Tensor:
        new = torch.zeros(slots, rank, width, device=self.device, dtype=self.dtype)
        if old is not None:
            new[: old.shape[0], : old.shape[1]] = old
        return new

    def _load(self, slot: int, adapter: Adapter) -> None:
        rank, scale = adapter.spec.rank, adapter.spec.scale
        for name, a in self.a.items():
            b = self.b[name]
            if name in adapter.a:
                a[slot, :rank].copy_(adapter.a[name])
                a[slot, rank:].zero_()
                b[slot, :rank].copy_(adapter.b[name].detach().float().t() * scale)
                b[slot, rank:].zero_()
            else:  # a module other adapters in the pool train and this one does not
                a[slot].zero_()
                b[slot].zero_()
        self._owners[slot] = weakref.ref(adapter)


class SlotRouting:
    """Adds each row's adapter delta to a LoRA module's output, with fixed shapes and no host sync.

    Modes (chosen per batch by the caller; each is one graph):
    ``shared``: every row uses the slot of row 0, one pair of matmuls as for a single adapter;
    ``gather``: each row gathers its slot's A and B, the delta is a batched matmul (cheap when the
    batch has fewer rows than the pool has slots);
    ``dense``: every row multiplies by every slot's A (one matmul over the pool), the products of
    the other slots are masked to zero and one matmul with the stacked Bs sums the rest (the pool
    is read once however many rows there are).
    """

    MODES = ("shared", "gather", "dense")

    def __init__(self, pool: LoraPool, row_slots: torch.Tensor, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown slot routing mode {mode!r}; expected one of {self.MODES}")
        self.pool, self.row_slots, self.mode = pool, row_slots, mode
        if mode == "dense":  # [rows, slots, 1]: 1 for the row's own slot
            self.mask = (row_slots[:, None] == pool._slot_ids[None, :]).to(pool.dtype)[:, :, None]
        elif mode == "shared":
            self.shared = row_slots[:1]

    def apply(self, name: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        a = self.pool.a.get(name)
        if a is None:
            return out
        b = self.pool.b[name]
        if self.mode == "shared":
            return out.add_((x @ a.index_select(0, self.shared)[0].t()) @ b.index_select(0, self.shared)[0])
        rows = x.shape[0]
        x = x.reshape(rows, -1, x.shape[-1])  # [rows, tokens, in]
        if self.mode == "dense":
            slots, rank = a.shape[0], a.shape[1]
            u = torch.matmul(x, a.view(slots * rank, -1).t()).view(rows, -1, slots, rank)
            u = (u * self.mask[:, None]).view(rows, -1, slots * rank)
            delta = torch.matmul(u, b.view(slots * rank, -1))
        else:
            a_rows, b_rows = a.index_select(0, self.row_slots), b.index_select(0, self.row_slots)
            delta = torch.bmm(torch.bmm(x, a_rows.transpose(1, 2)), b_rows)
        return out.add_(delta.view(out.shape))
