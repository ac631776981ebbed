"""Dimuon (``cookbook/backend/local/optimizer.py``) against an independent computation: the
Newton-Schulz polynomial applied to the singular values (SVD), the preconditioner and momentum by
hand in float64, two steps of a real LoRA client, and its state through save / load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from backend_helpers import make_datum
from tinker import types

from cookbook.backend.local import optimizer
from cookbook.backend.local.errors import OptimizerParamsError


def _spectral_msign(p: np.ndarray) -> np.ndarray:
    """The same quintic iteration, run on the singular values of ``p / ||p||_F``."""
    u, s, vt = np.linalg.svd(p / (np.linalg.norm(p) + optimizer.NORM_EPS), full_matrices=False)
    a, b, c = optimizer.NS_COEFFICIENTS
    for _ in range(optimizer.NS_STEPS):
        s = a * s + b * s ** 3 + c * s ** 5
    return (u * s) @ vt


def _direction(m: np.ndarray, damping: float) -> np.ndarray:
    if not m.any():  # no gradient yet (LoRA's A before B moves): no update
        return np.zeros_like(m)
    sq = m * m
    d = damping * sq.mean()
    p = m / ((sq.mean(axis=1, keepdims=True) + d) ** 0.25 * (sq.mean(axis=0, keepdims=True) + d) ** 0.25)
    x = _spectral_msign(p)
    return x * np.sqrt(min(m.shape)) / (np.linalg.norm(x) + optimizer.NORM_EPS)


@pytest.mark.parametrize("shape", [(8, 3), (3, 8), (5, 5)])
def test_direction_equals_the_spectral_computation(shape):
    m = np.random.default_rng(0).normal(size=shape)
    ours = optimizer.dimuon_direction(torch.tensor(m, dtype=torch.float64), optimizer.DEFAULT_DAMPING).numpy()
    np.testing.assert_allclose(ours, _direction(m, optimizer.DEFAULT_DAMPING), atol=1e-10)
    singular = np.linalg.svd(ours, compute_uv=False)  # roughly orthogonal: all singular values near 1
    assert np.linalg.norm(ours) == pytest.approx(np.sqrt(min(shape)), rel=1e-6) and singular.min() > 0.5


def test_two_steps_of_a_lora_client_follow_the_update_rule(service):
    tc = service.create_lora_training_client("tiny", rank=4, seed=0, optimizer=types.DimuonOptimizerConfig())
    assert tc.get_info().optimizer_config.type == "dimuon"
    data = [make_datum([5, 72, 101, 108, 108, 111]), make_datum([40, 41, 42, 43])]
    params = types.DimuonParams(learning_rate=0.01, beta1=0.8)
    lr = 0.01 * (32 / 4) ** optimizer.DEFAULT_RANK_EXPONENT
    momentum: dict[str, np.ndarray] = {}
    for _ in range(2):
        tc.forward_backward(data, "cross_entropy").result()
        before = {k: v.detach().double().cpu().numpy().copy() for k, v in tc.adapter.state_dict().items()}
        grads = {n: p.grad.double().cpu().numpy().copy()
                 for n, p in zip(tc.adapter.state_dict(), tc.adapter.parameters()) if p.grad is not None}
        tc.optim_step(params).result()
        after = {k: v.detach().double().cpu().numpy() for k, v in tc.adapter.state_dict().items()}
        for name, g in grads.items():
            momentum[name] = 0.2 * g if name not in momentum else 0.8 * momentum[name] + 0.2 * g
            m = momentum[name].reshape(momentum[name].shape[0], -1)
            expected = before[name] - lr * _direction(m, optimizer.DEFAULT_DAMPING).reshape(before[name].shape)
            np.testing.assert_allclose(after[name], expected, atol=1e-5)
    with pytest.raises(OptimizerParamsError, match="DimuonParams"):
        tc.optim_step(types.AdamParams(learning_rate=1e-3))
