"""Packed datums (``document_ids``) compute what their documents compute alone, and the loss
normalisations of ``cookbook.supervised.packing`` equal independent computations (loss and gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from backend_helpers import LOW_PRECISION, make_datum, randomize_adapter
from tinker import types

from cookbook.backend.local import errors
from cookbook.supervised.packing import normalize_weights, pack_data

# fp32: the packed rows only reorder sums (padding, attention over masked keys); bf16 rounds per op
TOL = dict(atol=2e-2, rtol=2e-2) if LOW_PRECISION else dict(atol=2e-5, rtol=1e-4)


def _docs(seed: int = 0, n: int = 7, k: int | None = None) -> list[types.Datum]:
    """Documents of varied length with random weights (zero on some positions, as prompts are)."""
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(n):
        tokens = rng.integers(1, 250, size=int(rng.integers(3, 24))).tolist()
        weights = (rng.random(len(tokens) - 1) * (rng.random(len(tokens) - 1) > 0.3)).astype(np.float32)
        weights[-1] = 1.0
        if k is None:
            data.append(make_datum(tokens, weights=weights.tolist()))
        else:
            targets = np.stack([tokens[1:]] + [rng.integers(1, 250, size=len(tokens) - 1) for _ in range(k - 1)], 1)
            probs = rng.dirichlet(np.ones(k), size=len(tokens) - 1).astype(np.float32) * weights[:, None]
            data.append(make_datum(tokens, target_tokens=targets, weights=probs))
    return data


def _pass(tc, data, loss_fn="cross_entropy"):
    if callable(loss_fn):
        out = tc.forward_backward_custom(data, loss_fn).result()
    else:
        out = tc.forward_backward(data, loss_fn).result()
    grads = [p.grad.clone() for p in tc.adapter.parameters()]
    for p in tc.adapter.parameters():
        p.grad = None
    return out, grads


@pytest.fixture(scope="module")
def client(service):
    tc = service.create_lora_training_client("tiny", rank=8, seed=11)
    randomize_adapter(tc, seed=5)
    return tc


def _assert_grads(a, b):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, **TOL)


@pytest.mark.parametrize("k", [None, 3])
def test_packed_rows_give_the_unpacked_loss_logprobs_and_gradients(client, k):
    data = _docs(k=k)
    rows = pack_data(data, 40)
    sizes = [int(r.loss_fn_inputs["document_ids"].to_numpy().max()) + 1 for r in rows]
    assert sum(sizes) == len(data) and max(sizes) >= 3 and len(rows) >= 2  # several docs per row, rows padded
    assert len({r.model_input.length for r in rows}) > 1
    unpacked, unpacked_grads = _pass(client, data)
    packed, packed_grads = _pass(client, rows)
    assert packed.metrics["loss:sum"] == pytest.approx(unpacked.metrics["loss:sum"], rel=TOL["rtol"])
    _assert_grads(packed_grads, unpacked_grads)
    alone = [o["logprobs"].to_numpy() for o in unpacked.loss_fn_outputs]
    together = np.concatenate([o["logprobs"].to_numpy() for o in packed.loss_fn_outputs])
    np.testing.assert_allclose(together, np.concatenate(alone), **TOL)


def test_a_document_never_sees_its_neighbours(client):
    """Changing one document's tokens changes no other document's logprobs in the same row."""
    data = _docs(seed=3, n=3)
    changed = [data[0], make_datum([9, 8, 7, 6, 5, 4, 3, 2, 1]), data[2]]
    first = client.forward(pack_data(data, 1000), "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_numpy()
    second = client.forward(pack_data(changed, 1000), "cross_entropy").result().loss_fn_outputs[0]["logprobs"]
    second = second.to_numpy()
    n0, n1 = data[0].model_input.length, data[1].model_input.length
    np.testing.assert_allclose(second[:n0], first[:n0], **TOL)
    np.testing.assert_allclose(second[-data[2].model_input.length:], first[n0 + n1:], **TOL)


def _custom(how: str):
    """The normalised cross-entropy written out by hand on the per-datum logprobs."""
    def loss(batch, logprobs):
        terms, weights = [], []
        for d, lp in zip(batch, logprobs):
            w = torch.tensor(np.asarray(d.loss_fn_inputs["weights"].to_numpy()), device=lp.device)
            terms.append(-(lp * w).sum())
            weights.append(float(w.sum()))
        if how == "token_mean":
            return sum(terms) / sum(weights), {}
        return sum(t / w for t, w in zip(terms, weights)) / len(terms), {}
    return loss


@pytest.mark.parametrize("how", ["token_mean", "sequence_mean"])
@pytest.mark.parametrize("packed", [False, True])
def test_loss_normalisations_equal_a_hand_computation(client, how, packed):
    data = _docs(seed=7)
    batch = normalize_weights(data, how)
    out, grads = _pass(client, pack_data(batch, 40) if packed else batch)
    ref, ref_grads = _pass(client, data, _custom(how))
    assert out.metrics["loss:sum"] == pytest.approx(ref.metrics["loss:sum"], rel=TOL["rtol"])
    _assert_grads(grads, ref_grads)


def test_sum_normalisation_leaves_the_batch_alone():
    data = _docs(seed=1)
    assert normalize_weights(data, "sum") == data
    total = sum(float(d.loss_fn_inputs["weights"].to_numpy().sum()) for d in normalize_weights(data, "token_mean"))
    assert total == pytest.approx(1.0)
    per_seq = [float(d.loss_fn_inputs["weights"].to_numpy().sum()) for d in normalize_weights(data, "sequence_mean")]
    assert per_seq == pytest.approx([1 / len(data)] * len(data))


def test_bad_document_ids_are_rejected_before_anything_runs(client):
    datum = _docs(n=1)[0]
    n = datum.model_input.length
    for ids, error in (([0] * (n - 1), errors.LengthMismatchError),
                       ([0] * (n - 2) + [1, 0], errors.InvalidRequestError),
                       ([0.5] * n, errors.InvalidRequestError)):
        bad = types.Datum(model_input=datum.model_input, loss_fn_inputs={
            **datum.loss_fn_inputs, "document_ids": types.TensorData.from_numpy(np.asarray(ids))})
        with pytest.raises(error, match="document_ids"):
            client.forward_backward([bad], "cross_entropy")
    assert all(p.grad is None for p in client.adapter.parameters())
