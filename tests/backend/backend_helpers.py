"""Helpers shared by the backend tests."""

from __future__ import annotations

import torch
from tinker import types


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
