"""Datum helpers: a rendered sequence and its per-token weights -> a next-token ``tinker.types.Datum``.

Every loop's data module (SFT conversations, preference completions, reward-model scores) builds its
training data with :func:`next_token_datum`, so truncation and the datum's layout are the same
everywhere. A leaf: imports ``tinker`` and ``numpy`` only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tinker import types


def next_token_datum(tokens: Sequence[int], weights: Sequence[float],
                     max_length: int | None = None) -> types.Datum | None:
    """Position i of the input predicts token i + 1: the input is ``tokens[:-1]``, the targets ``tokens[1:]``
    weighted by ``weights[1:]``; only the first ``max_length + 1`` tokens are kept. None when fewer than
    two tokens or no weighted target are left."""
    if max_length is not None:
        tokens, weights = tokens[: max_length + 1], weights[: max_length + 1]
    if len(tokens) < 2 or not any(weights[1:]):
        return None
    return types.Datum(model_input=types.ModelInput.from_ints(list(tokens[:-1])), loss_fn_inputs={
        "target_tokens": types.TensorData.from_numpy(np.asarray(tokens[1:], dtype=np.int64)),
        "weights": types.TensorData.from_numpy(np.asarray([float(w) for w in weights[1:]], dtype=np.float32))})
