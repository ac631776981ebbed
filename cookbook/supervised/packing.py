"""A step's SFT batch, reshaped before ``forward_backward``: loss normalisation and sequence packing.

- :func:`normalize_weights` scales the datums' weights so that ``cross_entropy`` (a raw sum over
  tokens, as every Tinker loss) computes the loss the run config names (``loss_normalization``):
  ``sum`` (the raw sum, unchanged), ``token_mean`` (the mean over every weighted token of the batch)
  or ``sequence_mean`` (each sequence's own mean over its weighted tokens, averaged over the
  sequences). Weights of ``[N, K]`` targets (a distillation datum) count per position.
- :func:`pack_data` concatenates several datums into rows of at most ``row_length`` tokens, each
  with a ``document_ids`` loss input (``0`` for its first datum's positions, ``1`` for the next,
  ...). A backend that honours it (the local one) restarts positions at every document and lets no
  token attend to another document's tokens, so a packed batch computes the same loss and
  gradients as the unpacked one, with no padding between sequences.

Imports ``tinker`` and ``numpy`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from tinker import types

DOCUMENT_IDS = "document_ids"  # the loss input the local backend reads (see its validation module)
LossNormalization = Literal["sum", "token_mean", "sequence_mean"]


def _weights(datum: types.Datum) -> np.ndarray:
    return np.asarray(datum.loss_fn_inputs["weights"].to_numpy(), dtype=np.float32)


def _with_inputs(datum: types.Datum, **inputs: np.ndarray) -> types.Datum:
    loss_fn_inputs = dict(datum.loss_fn_inputs)
    loss_fn_inputs.update({k: types.TensorData.from_numpy(v) for k, v in inputs.items()})
    return types.Datum(model_input=datum.model_input, loss_fn_inputs=loss_fn_inputs)


def position_weight(weights: np.ndarray) -> float:
    """The weight a datum's weights count for: per position (an ``[N, K]`` row sums to one position's)."""
    return float(weights.sum())


def normalize_weights(batch: Sequence[types.Datum], how: LossNormalization) -> list[types.Datum]:
    """The batch with its weights scaled for ``how`` (see the module docstring); datums with no weight
    keep zero weights and do not count as sequences."""
    if how == "sum":
        return list(batch)
    weights = [_weights(d) for d in batch]
    totals = [position_weight(w) for w in weights]
    if how == "token_mean":
        total = sum(totals)
        return [_with_inputs(d, weights=w / total if total else w) for d, w in zip(batch, weights)]
    if how == "sequence_mean":
        counted = sum(1 for t in totals if t)
        return [_with_inputs(d, weights=w / (t * counted) if t else w) for d, w, t in zip(batch, weights, totals)]
    raise ValueError(f"unknown loss normalization {how!r}; one of sum, token_mean, sequence_mean")


def pack_data(batch: Sequence[types.Datum], row_length: int) -> list[types.Datum]:
    """The datums, in order, concatenated into rows of at most ``row_length`` tokens (a longer datum is
    a row of its own); each row carries ``document_ids``. Every datum must have the same loss inputs
    (and, for ``[N, K]`` targets, the same K)."""
    if row_length < 1:
        raise ValueError(f"row_length must be >= 1, got {row_length}")
    rows: list[list[types.Datum]] = []
    used = 0
    for datum in batch:
        n = datum.model_input.length
        if not rows or used + n > row_length:
            rows.append([])
            used = 0
        rows[-1].append(datum)
        used += n
    return [_concatenate(row) for row in rows]


def _concatenate(row: Sequence[types.Datum]) -> types.Datum:
    keys = list(row[0].loss_fn_inputs)
    if any(set(d.loss_fn_inputs) != set(keys) for d in row):
        raise ValueError("packed datums must all have the same loss inputs")
    if DOCUMENT_IDS in keys:
        raise ValueError("a datum that is already packed cannot be packed again")
    tokens = [t for d in row for t in d.model_input.to_ints()]
    inputs = {k: np.concatenate([np.asarray(d.loss_fn_inputs[k].to_numpy()) for d in row]) for k in keys}
    inputs[DOCUMENT_IDS] = np.concatenate([np.full(d.model_input.length, i, dtype=np.int64)
                                           for i, d in enumerate(row)])
    return types.Datum(model_input=types.ModelInput.from_ints(tokens),
                       loss_fn_inputs={k: types.TensorData.from_numpy(v) for k, v in inputs.items()})
