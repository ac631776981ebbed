"""LoRA on a frozen, shared base model.

The base model's target ``nn.Linear`` layers are wrapped once in :class:`LoRALinear`. The wrapper
holds no adapter weights itself: an :class:`Adapter` (one per training client or sampler snapshot)
holds ``A`` (rank x in) and ``B`` (out x rank, zero-initialised) for each module it trains, and
the engine chooses which adapters are active for a call with :func:`use_adapters`. Rows of one
batch may use different adapters (multi-LoRA decoding), or none (the base model). The static decode
step routes rows to the slots of a ``lora_pool.LoraPool`` instead (:func:`use_slots`).

output = base(x) + (alpha / rank) * (x @ A^T) @ B^T

Adapter weights (and so gradients and optimizer state) are kept in fp32; the LoRA matmuls run in
the input's dtype (bf16 on GPU), casting the small A and B rather than the activations, so no
fp32 copy of any layer input is made or saved for backward. Sampling snapshots are stored in the
model's dtype directly.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

ATTN_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_SUFFIXES = ("gate_proj", "up_proj", "down_proj")
UNEMBED_NAME = "lm_head"


@dataclass(frozen=True)
class LoraSpec:
    rank: int = 32
    alpha: float = 32.0
    train_attn: bool = True
    train_mlp: bool = True
    train_unembed: bool = True

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def targets(self, module_names: Sequence[str]) -> list[str]:
        chosen = []
        for name in module_names:
            leaf = name.rsplit(".", 1)[-1]
            if (self.train_attn and leaf in ATTN_SUFFIXES) or (self.train_mlp and leaf in MLP_SUFFIXES) or (
                self.train_unembed and name == UNEMBED_NAME
            ):
                chosen.append(name)
        return chosen


@dataclass
class Adapter:
    """One LoRA adapter: parameters keyed by wrapped-module name."""

    spec: LoraSpec
    a: dict[str, nn.Parameter] = field(default_factory=dict)
    b: dict[str, nn.Parameter] = field(default_factory=dict)

    def parameters(self) -> list[nn.Parameter]:
        """Deterministic order: A then B of each module, modules sorted by name."""
        out: list[nn.Parameter] = []
        for name in sorted(self.a):
            out += [self.a[name], self.b[name]]
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        sd = {}
        for name in sorted(self.a):
            sd[f"{name}.lora_A"] = self.a[name].detach().clone()
            sd[f"{name}.lora_B"] = self.b[name].detach().clone()
        return sd

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        expected = {f"{n}.lora_{x}" for n in self.a for x in "AB"}
        if set(sd) != expected:
            missing, extra = sorted(expected - set(sd)), sorted(set(sd) - expected)
            raise ValueError(f"adapter weights do not match this model: missing {missing[:3]}, unexpected {extra[:3]}")
        with torch.no_grad():
            for name in self.a:
                self.a[name].copy_(sd[f"{name}.lora_A"])
                self.b[name].copy_(sd[f"{name}.lora_B"])

    def snapshot(self, dtype: torch.dtype | None = None) -> "Adapter":
        """A frozen copy (for sampling clients), in ``dtype`` if given: later training does not change it."""
        snap = Adapter(self.spec)
        for name in self.a:
            snap.a[name] = nn.Parameter(self.a[name].detach().to(dtype, copy=True), requires_grad=False)
            snap.b[name] = nn.Parameter(self.b[name].detach().to(dtype, copy=True), requires_grad=False)
        return snap

    def num_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())


def target_shapes(model: nn.Module, spec: LoraSpec) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each layer ``spec`` adapts; nothing is allocated."""
    wrapped = {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}
    return {name: (wrapped[name].base.in_features, wrapped[name].base.out_features)
            for name in spec.targets(sorted(wrapped))}


def max_rank(model: nn.Module, spec: LoraSpec) -> int:
    """The largest useful rank: the narrowest adapted layer's width (a higher rank adds no capacity)."""
    return min((min(shape) for shape in target_shapes(model, spec).values()), default=0)


def training_bytes(model: nn.Module, spec: LoraSpec) -> int:
    """Memory a training client's adapter holds: fp32 weights, gradients and two Adam moments."""
    params = sum(spec.rank * (i + o) for i, o in target_shapes(model, spec).values())
    return params * 4 * 4


def new_adapter(model: nn.Module, spec: LoraSpec, seed: int | None, device: torch.device) -> Adapter:
    """Kaiming-uniform A (as nn.Linear does), zero B, in fp32."""
    wrapped = {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}
    targets = spec.targets(sorted(wrapped))
    if not targets:
        raise ValueError("LoRA must train at least one of attention, MLP or unembedding")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(0 if seed is None else int(seed))
    adapter = Adapter(spec)
    for name in targets:
        base = wrapped[name].base
        a = torch.empty(spec.rank, base.in_features)
        bound = 1.0 / math.sqrt(base.in_features)  # kaiming_uniform_(a=sqrt(5)) bound
        a.uniform_(-bound, bound, generator=gen)
        adapter.a[name] = nn.Parameter(a.to(device))
        adapter.b[name] = nn.Parameter(torch.zeros(base.out_features, spec.rank, device=device))
    return adapter


class _Group:
    """An adapter and the batch rows it applies to (None: every row)."""

    __slots__ = ("adapter", "rows", "_on_device")

    def __init__(self, adapter: Adapter, rows: list[int] | None) -> None:
        self.adapter = adapter
        self.rows = None if rows is None else torch.tensor(rows)
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def rows_on(self, device: torch.device) -> torch.Tensor:
        """The row indices on ``device``, copied there once per routing, not once per layer."""
        rows = self._on_device.get(device)
        if rows is None:
            rows = self._on_device[device] = self.rows.to(device)
        return rows


class _Routing(threading.local):
    """Which adapter each batch row uses, for the duration of one model call."""

    def __init__(self) -> None:
        self.groups: list[_Group] = []
        self.slots = None  # a lora_pool.SlotRouting while a static decode step runs


_routing = _Routing()


@contextlib.contextmanager
def use_adapters(row_adapters: Adapter | None | Sequence[Adapter | None]) -> Iterator[None]:
    """Activate one adapter for every row, or one per row (``None`` = base model for that row)."""
    if row_adapters is None or isinstance(row_adapters, Adapter):
        groups = [] if row_adapters is None else [_Group(row_adapters, None)]
    else:
        by_id: dict[int, tuple[Adapter, list[int]]] = {}
        for row, ad in enumerate(row_adapters):
            if ad is not None:
                by_id.setdefault(id(ad), (ad, []))[1].append(row)
        if len(by_id) == 1 and len(next(iter(by_id.values()))[1]) == len(row_adapters):
            groups = [_Group(next(iter(by_id.values()))[0], None)]
        else:
            groups = [_Group(ad, rows) for ad, rows in by_id.values()]
    with _routed(groups):
        yield


@contextlib.contextmanager
def use_slots(routing) -> Iterator[None]:
    """Route every row through a ``lora_pool.SlotRouting`` (its slot's adapter, or the base model)."""
    with _routed([], routing):
        yield


@contextlib.contextmanager
def _routed(groups: list[_Group], slots=None) -> Iterator[None]:
    previous = _routing.groups, _routing.slots
    _routing.groups, _routing.slots = groups, slots
    try:
        yield
    finally:
        _routing.groups, _routing.slots = previous


def keep_routing(fn: Callable) -> Callable:
    """``fn`` bound to the adapters routed now, whichever thread calls it later.

    The routing is thread-local (several threads may call the model), but autograd may run a
    backward pass, and with it every checkpoint recomputation, on a thread of its own (on CUDA it
    always does). Functions that ``torch.utils.checkpoint`` recomputes must be wrapped with this,
    or the recomputed forward would run without the adapters.
    """
    groups, slots = _routing.groups, _routing.slots

    @functools.wraps(fn)
    def routed(*args, **kwargs):
        with _routed(groups, slots):
            return fn(*args, **kwargs)
    return routed


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus the currently routed LoRA deltas."""

    def __init__(self, name: str, base: nn.Linear) -> None:
        super().__init__()
        self.name = name
        self.base = base

    @property
    def weight(self) -> torch.Tensor:  # some HF code reads lm_head.weight directly
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if _routing.slots is not None:
            return _routing.slots.apply(self.name, x, out)
        for group in _routing.groups:
            adapter = group.adapter
            a = adapter.a.get(self.name)
            if a is None:
                continue
            b = adapter.b[self.name]
            if a.dtype != x.dtype:
                a, b = a.to(x.dtype), b.to(x.dtype)
            # Scale the rank-r intermediate (cheap) and add in place: the base output is not
            # needed by any backward, so this saves two full-size temporaries per layer.
            if group.rows is None:
                out.add_((x @ a.t()) * adapter.spec.scale @ b.t())
            else:
                rows = group.rows_on(x.device)
                out.index_add_(0, rows, (x.index_select(0, rows) @ a.t()) * adapter.spec.scale @ b.t())
        return out


def wrap_model(model: nn.Module) -> list[str]:
    """Wrap every LoRA-able linear layer in place; freeze the base. Returns the wrapped names."""
    for p in model.parameters():
        p.requires_grad_(False)
    names = []
    for name, module in list(model.named_modules()):
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, nn.Linear) and (leaf in ATTN_SUFFIXES or leaf in MLP_SUFFIXES or name == UNEMBED_NAME):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, LoRALinear(name, module))
            names.append(name)
    return names

