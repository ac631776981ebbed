"""Off-policy top-K distillation data: a teacher's top-K next-token distribution on a fixed dataset.

:func:`teacher_topk_data` turns next-token datums (``cookbook.supervised.data``: a conversation's
tokens and its trained positions) into distillation datums: at every trained position the targets
are the teacher's K most likely next tokens (``target_tokens`` of shape ``[N, K]``) and the weights
their teacher probabilities renormalised over those K, times the position's own weight. The
student then trains with the plain ``cross_entropy`` loss (``-sum_k w_k log q(t_k)``: the cross
entropy of the student against the teacher's top-K distribution, whose gradient is the forward KL's)
in the SFT loop: the dataset is scored once, before training, through the sampling primitive
(``sample`` with ``max_tokens=1`` and ``topk_prompt_logprobs=K``), so any backend and any teacher
that shares the student's tokenizer works. Reference answers are never trained on directly.

May import the shared layer (``cookbook.primitives``, ``cookbook.errors``), ``tinker`` and ``numpy``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tinker import types

from cookbook.errors import ConfigError, DataError
from cookbook.primitives import SamplingClient


def teacher_topk_data(teacher: SamplingClient, data: Sequence[types.Datum], k: int, *,
                      temperature: float = 1.0, chunk: int = 256) -> list[types.Datum]:
    """Distillation datums of ``data`` (see the module docstring): ``[N, K]`` targets and weights from
    ``teacher``'s top-``k`` log-probabilities (divided by ``temperature`` before renormalising).
    Requests go ``chunk`` at a time, each chunk submitted before any of it is awaited."""
    if k < 1:
        raise ConfigError(f"topk must be >= 1, got {k}")
    if temperature <= 0:
        raise ConfigError(f"distillation temperature must be > 0, got {temperature}")
    out: list[types.Datum] = []
    params = types.SamplingParams(max_tokens=1, temperature=1.0)
    for start in range(0, len(data), chunk):
        part = data[start: start + chunk]
        futures = [teacher.sample(prompt=types.ModelInput.from_ints(_sequence(d)), num_samples=1,
                                  sampling_params=params, include_prompt_logprobs=True, topk_prompt_logprobs=k)
                   for d in part]
        out += [topk_datum(d, f.result().topk_prompt_logprobs, k, temperature) for d, f in zip(part, futures)]
    return out


def _sequence(datum: types.Datum) -> list[int]:
    """The whole token sequence of a next-token datum: its input and its last target."""
    targets = np.asarray(datum.loss_fn_inputs["target_tokens"].to_numpy())
    if targets.ndim != 1:
        raise DataError("teacher_topk_data takes next-token datums with one target per position")
    return [*datum.model_input.to_ints(), int(targets[-1])]


def topk_datum(datum: types.Datum, topk: Sequence[Sequence[tuple[int, float]] | None] | None, k: int,
               temperature: float = 1.0) -> types.Datum:
    """One distillation datum from the teacher's top-``k`` prompt logprobs of the datum's whole sequence
    (``topk[i]``: the alternatives for token ``i`` given the tokens before it; ``topk[0]`` is None).
    Positions of weight 0 keep zero weights (their targets are the teacher's, or the datum's own)."""
    n = datum.model_input.length
    weights = np.asarray(datum.loss_fn_inputs["weights"].to_numpy(), dtype=np.float32)
    own = np.asarray(datum.loss_fn_inputs["target_tokens"].to_numpy(), dtype=np.int64)
    if topk is None or len(topk) != n + 1:
        raise DataError(f"the teacher returned {0 if topk is None else len(topk)} top-k rows for a sequence "
                        f"of {n + 1} tokens (does the backend support topk_prompt_logprobs?)")
    targets = np.repeat(own[:, None], k, axis=1)
    probs = np.zeros((n, k), dtype=np.float32)
    for j in range(n):
        row = topk[j + 1]
        if not weights[j] or not row:
            continue
        ids = np.asarray([t for t, _ in row[:k]], dtype=np.int64)
        logprobs = np.asarray([lp for _, lp in row[:k]], dtype=np.float64) / temperature
        p = np.exp(logprobs - logprobs.max())
        targets[j, : len(ids)] = ids
        probs[j, : len(ids)] = p / p.sum() * weights[j]
    return types.Datum(model_input=datum.model_input, loss_fn_inputs={
        "target_tokens": types.TensorData.from_numpy(targets),
        "weights": types.TensorData.from_numpy(probs)})
