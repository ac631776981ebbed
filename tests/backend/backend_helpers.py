"""Helpers shared by the backend tests."""

from __future__ import annotations

import numpy as np
import torch
from precision import DEVICE, DTYPE, LOW_PRECISION  # noqa: F401 - the backend tests import them from here
from tinker import types

from cookbook.backend.local import memory


def make_datum(tokens: list[int], **extra) -> types.Datum:
    """Next-token datum over a token sequence: input = seq[:-1], target = seq[1:]."""
    n = len(tokens) - 1
    inputs = dict(target_tokens=tokens[1:], weights=[1.0] * n)
    inputs.update(extra)
    return types.Datum(model_input=types.ModelInput.from_ints(tokens[:-1]), loss_fn_inputs=inputs)


def text_data(tokenizer, texts: list[str]) -> list[types.Datum]:
    return [make_datum(tokenizer.encode(t)) for t in texts]


def randomize_adapter(client, seed: int = 0, scale: float = 0.05) -> None:
    """Give B non-zero values so the adapter changes the model (B starts at zero)."""
    gen = torch.Generator().manual_seed(seed)
    sd = client.adapter.state_dict()
    client.adapter.load_state_dict({k: torch.randn(v.shape, generator=gen) * scale for k, v in sd.items()})


def adapter_tensors(client) -> dict[str, torch.Tensor]:
    return client.adapter.state_dict()


def free_for(cost: memory.ActivationCost, tokens: int, per_token: int) -> int:
    """Free memory at which a micro-batch holds ``tokens`` tokens of ``per_token`` bytes each."""
    return int((cost.reserve + tokens * per_token + per_token // 2) / memory.HEADROOM) + 1


# In a low-precision dtype no fixed tolerance is right for every quantity, so a comparison with the
# fp32 result is bounded by the rounding noise of that very quantity, measured in the same run: how
# far a second, independent low-precision computation of it (plain transformers / PEFT in the same
# dtype, or our own other code path) lands from the fp32 result on the same device. Ours may be at
# most NOISE_FACTOR times as far, in L2 norm (the largest single element is too noisy a statistic).
NOISE_FACTOR = 2.0


def assert_close(ours, exact, *, atol: float, rtol: float = 0.0, peer=None) -> None:
    """``ours`` vs ``exact`` (an fp32 result): elementwise fp32 tolerances in fp32; in low precision,
    ``||ours - exact|| <= NOISE_FACTOR * ||peer - exact||`` plus the fp32 tolerances' norm, where
    ``peer`` is the same quantity computed independently in the low-precision dtype.
    """
    ours, exact = _np(ours), _np(exact)
    if not LOW_PRECISION:
        np.testing.assert_allclose(ours, exact, atol=atol, rtol=rtol)
        return
    assert peer is not None, "a low-precision comparison needs the peer computation that measures its noise"
    err, noise = np.linalg.norm(ours - exact), np.linalg.norm(_np(peer) - exact)
    slack = np.linalg.norm(atol + rtol * np.abs(exact))
    assert err <= NOISE_FACTOR * noise + slack, (
        f"error {err:.3g} vs fp32 exceeds {NOISE_FACTOR} x the {DTYPE} noise {noise:.3g} (+ {slack:.3g})")


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
