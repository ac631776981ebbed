"""The two optimizer families a training client can be created with: AdamW (default) and Dimuon.

The family is fixed when the client is created (``optimizer=types.AdamOptimizerConfig()`` or
``types.DimuonOptimizerConfig()``); every ``optim_step`` passes the matching parameters
(``AdamParams`` / ``DimuonParams``). Both clip the global gradient norm first (0 = off) and report
``grad_norm:mean`` and ``learning_rate:mean``.

**AdamW** is ``torch.optim.AdamW`` (decoupled weight decay).

**Dimuon** (this backend's implementation of what the Tinker docs define: a momentum EMA with
``beta1``, a row and column preconditioner smoothed by ``damping``, a matrix-sign iteration, a
learning rate "applied to a direction with Frobenius norm sqrt(rank)", and a learning-rate
correction relative to rank 32 with exponent ``rank_lr_correction_exponent``). Each parameter is a
matrix ``[rows, cols]`` (other shapes are flattened to ``[shape[0], rest]``; vectors are one row).
Per step, for each matrix with gradient ``G``::

    M  <- beta1 * M + (1 - beta1) * G                                  (momentum, starts at 0)
    P  =  M / ((rowms_i + d)^(1/4) * (colms_j + d)^(1/4))              rowms / colms: mean of M^2 per
                                                                       row / column; d = damping * mean(M^2)
    X0 =  P / (||P||_F + 1e-7);  5 x  X <- a X + (b A + c A^2) X, A = X X^T   (a, b, c) = (3.4445, -4.7750, 2.0315)
    U  =  X * sqrt(min(rows, cols)) / (||X||_F + 1e-7)                 (Frobenius norm sqrt(rank))
    W  <- W - lr * (32 / lora_rank)^rank_lr_correction_exponent * U

Chosen here where the docs leave it open (and tested against a spectral computation of the same
function, ``tests/backend/test_dimuon.py``): the preconditioner's form (diagonal, inverse fourth
roots as in Shampoo) and relative damping (default 0.01), the quintic Newton-Schulz iteration
(5 steps), the rank used for the norm (the matrix's smaller side: the LoRA rank for LoRA factors),
the rank correction default 0.5 (so a step's size does not grow with the rank), and no correction
for full fine-tuning. ``DimuonParams`` in SDK 0.38 has ``learning_rate``, ``grad_clip_norm`` and
``beta1``; ``damping`` and ``rank_lr_correction_exponent`` (newer SDKs) are read when sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from tinker import types
from tinker.types.optimizer import OptimParamsBase

from . import errors

ADAMW, DIMUON = "adamw", "dimuon"
FAMILIES = (ADAMW, DIMUON)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
NORM_EPS = 1e-7
DEFAULT_DAMPING = 0.01
DEFAULT_RANK_EXPONENT = 0.5
REFERENCE_RANK = 32


def family_of(config: types.OptimizerConfig | Mapping[str, Any] | None) -> str:
    """The optimizer family a creation request names (AdamW when none)."""
    if config is None:
        return ADAMW
    kind = config.get("type") if isinstance(config, Mapping) else getattr(config, "type", None)
    if kind not in FAMILIES:
        raise errors.InvalidRequestError(f"unknown optimizer {kind!r}; choose one of {', '.join(FAMILIES)}")
    return str(kind)


def config_of(family: str) -> types.OptimizerConfig:
    return types.DimuonOptimizerConfig() if family == DIMUON else types.AdamOptimizerConfig()


class Optimizer(Protocol):
    family: str

    def check(self, params: Any) -> Any:
        """Validate ``optim_step``'s parameters at submission (typed errors); what :meth:`step` takes."""

    def step(self, settings: Any) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def make(family: str, params: Sequence[torch.nn.Parameter], lora_rank: int | None) -> Optimizer:
    if family == DIMUON:
        return Dimuon(params, lora_rank)
    return AdamW(params)


def _global_norm(params: Sequence[torch.nn.Parameter]) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


def _wrong_family(family: str, params: Any) -> errors.OptimizerParamsError:
    wanted = "DimuonParams" if family == DIMUON else "AdamParams"
    return errors.OptimizerParamsError(
        f"this client's optimizer is {family} (chosen when it was created); optim_step needs tinker.types.{wanted}, "
        f"got {type(params).__name__}")


class AdamW:
    family = ADAMW

    def __init__(self, params: Sequence[torch.nn.Parameter]) -> None:
        self.params = list(params)
        self.torch = torch.optim.AdamW(self.params, lr=1e-4, betas=(0.9, 0.95), eps=1e-12, weight_decay=0.0)

    def check(self, params: Any) -> types.AdamParams:
        if not isinstance(params, types.AdamParams):
            raise _wrong_family(self.family, params)
        values = params.model_dump()
        for key in ("learning_rate", "beta1", "beta2", "eps", "weight_decay", "grad_clip_norm"):
            if not np.isfinite(values[key]) or values[key] < 0:
                raise errors.InvalidRequestError(f"AdamParams.{key} must be finite and >= 0, got {values[key]}")
        if not (params.beta1 < 1 and params.beta2 < 1):
            raise errors.InvalidRequestError("AdamParams beta1 and beta2 must be < 1")
        return params

    def step(self, settings: types.AdamParams) -> dict[str, float]:
        norm = _global_norm(self.params)
        if settings.grad_clip_norm > 0 and norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, settings.grad_clip_norm)
        for group in self.torch.param_groups:
            group.update(lr=settings.learning_rate, betas=(settings.beta1, settings.beta2), eps=settings.eps,
                         weight_decay=settings.weight_decay)
        self.torch.step()
        self.torch.zero_grad(set_to_none=True)
        return {"grad_norm:mean": norm, "learning_rate:mean": settings.learning_rate}

    def state_dict(self) -> dict:
        return self.torch.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state.get("family", ADAMW) != ADAMW:
            raise errors.ModelMismatchError(f"the checkpoint's optimizer state is {state.get('family')}, not adamw")
        self.torch.load_state_dict(state)


@dataclass(frozen=True)
class DimuonSettings:
    learning_rate: float
    grad_clip_norm: float = 0.0
    beta1: float = 0.9
    damping: float = DEFAULT_DAMPING
    rank_lr_correction_exponent: float = DEFAULT_RANK_EXPONENT


def msign(p: torch.Tensor) -> torch.Tensor:
    """The quintic Newton-Schulz approximation of ``p``'s matrix sign (polar factor), on a 2-D matrix."""
    a, b, c = NS_COEFFICIENTS
    x = p / (torch.linalg.matrix_norm(p) + NORM_EPS)
    transposed = x.shape[0] > x.shape[1]
    if transposed:  # iterate on the smaller Gram matrix
        x = x.T
    for _ in range(NS_STEPS):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


def dimuon_direction(momentum: torch.Tensor, damping: float) -> torch.Tensor:
    """The unit-less update direction of one matrix's momentum (Frobenius norm sqrt(min(rows, cols)))."""
    m = momentum.reshape(momentum.shape[0], -1) if momentum.dim() > 1 else momentum.reshape(1, -1)
    sq = m * m
    d = damping * sq.mean()
    rows = (sq.mean(dim=1, keepdim=True) + d).pow(0.25)
    cols = (sq.mean(dim=0, keepdim=True) + d).pow(0.25)
    p = m / (rows * cols).clamp(min=torch.finfo(m.dtype).tiny)
    x = msign(p)
    u = x * math.sqrt(min(m.shape)) / (torch.linalg.matrix_norm(x) + NORM_EPS)
    return u.reshape(momentum.shape)


class Dimuon:
    family = DIMUON

    def __init__(self, params: Sequence[torch.nn.Parameter], lora_rank: int | None) -> None:
        self.params = list(params)
        self.lora_rank = lora_rank
        self.momentum: list[torch.Tensor | None] = [None] * len(self.params)
        self.steps = 0

    def check(self, params: Any) -> DimuonSettings:
        if not isinstance(params, OptimParamsBase) or getattr(params, "type", None) != DIMUON:
            raise _wrong_family(self.family, params)
        values = params.model_dump(exclude={"type"})
        unknown = set(values) - set(DimuonSettings.__dataclass_fields__)
        if unknown:
            raise errors.InvalidRequestError(f"DimuonParams has no field(s) {sorted(unknown)}")
        if "learning_rate" not in values:
            raise errors.InvalidRequestError("DimuonParams needs a learning_rate")
        settings = DimuonSettings(**{k: float(v) for k, v in values.items()})
        for key, value in vars(settings).items():
            if not math.isfinite(value):
                raise errors.InvalidRequestError(f"DimuonParams.{key} must be finite, got {value}")
        if settings.learning_rate < 0 or not 0 <= settings.beta1 < 1 or settings.damping <= 0:
            raise errors.InvalidRequestError("DimuonParams needs learning_rate >= 0, 0 <= beta1 < 1 and damping > 0")
        return settings

    def step(self, settings: DimuonSettings) -> dict[str, float]:
        norm = _global_norm(self.params)
        scale = 1.0
        if settings.grad_clip_norm > 0 and norm > settings.grad_clip_norm:
            scale = settings.grad_clip_norm / (norm + 1e-6)  # as torch's clip_grad_norm_
        lr = settings.learning_rate
        if self.lora_rank is not None:
            lr *= (REFERENCE_RANK / self.lora_rank) ** settings.rank_lr_correction_exponent
        with torch.no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                grad = p.grad * scale
                m = self.momentum[i]
                m = (1 - settings.beta1) * grad if m is None else settings.beta1 * m + (1 - settings.beta1) * grad
                self.momentum[i] = m
                p.sub_(lr * dimuon_direction(m, settings.damping))
                p.grad = None
        self.steps += 1
        return {"grad_norm:mean": norm, "learning_rate:mean": lr}

    def state_dict(self) -> dict:
        return {"family": DIMUON, "version": 1, "steps": self.steps,
                "momentum": [None if m is None else m.detach().cpu().clone() for m in self.momentum]}

    def load_state_dict(self, state: dict) -> None:
        if state.get("family") != DIMUON or len(state.get("momentum", [])) != len(self.params):
            raise errors.ModelMismatchError("the checkpoint's optimizer state is not Dimuon state for this model")
        self.steps = int(state["steps"])
        self.momentum = [None if m is None else m.to(p.device) for m, p in zip(state["momentum"], self.params)]
