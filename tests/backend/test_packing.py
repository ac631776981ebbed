"""Packed datums (``document_ids``) compute what their documents compute alone, and the loss
normalisations of ``cookbook.supervised.packing`` equal independent computations (loss and gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from backend_helpers import LOW_PRECISION, free_for, make_datum, randomize_adapter
from tinker import types

from cookbook.backend.local import errors, memory
from cookbook.backend.local.memory import piece_passes
from cookbook.backend.local.model import document_pieces
from cookbook.supervised.packing import normalize_weights, pack_data

# fp32: a packed row's documents run in other passes than the unpacked datums (other widths and
# neighbours reorder sums); bf16 rounds per op
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


def test_packed_rows_run_the_forward_passes_of_their_documents_unpacked(client, monkeypatch):
    """A packed batch runs the passes the same conversations run unpacked (same sizes and widths): no
    pass is wider than its longest document, so attention never spans a whole packed row."""
    data = _docs(seed=5, n=12)
    rows = pack_data(data, 64)
    assert max(r.model_input.length for r in rows) > max(d.model_input.length for d in data)
    shapes: list[tuple[int, int]] = []
    original = client.base.hidden_states

    def recording(batch):
        shapes.append((len(batch), max(len(s) for s in batch)))
        return original(batch)
    monkeypatch.setattr(client.base, "hidden_states", recording)
    client.forward_backward(data, "cross_entropy").result()
    unpacked, shapes[:] = sorted(shapes), []
    client.forward_backward(rows, "cross_entropy").result()
    assert sorted(shapes) == unpacked and max(w for _, w in unpacked) == max(d.model_input.length for d in data)
    for p in client.adapter.parameters():
        p.grad = None


def test_document_pieces_and_their_passes():
    ids = [torch.tensor([0, 0, 0, 1, 1, 2]), None, torch.tensor([0, 0, 0, 0])]
    assert document_pieces([6, 5, 4], ids) == [(0, 0, 3), (0, 3, 5), (0, 5, 6), (1, 0, 5), (2, 0, 4)]
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = rng.integers(1, 300, size=int(rng.integers(1, 40))).tolist()
        rows = int(rng.integers(1, len(lengths) + 1))
        # a micro-batch's budget: at least its rows x its longest row, which is at least its real tokens
        budget = max(sum(lengths), rows * max(lengths)) if rng.random() < 0.5 else sum(lengths)
        passes = piece_passes(lengths, budget, overhead=int(rng.choice([0, 128, 4096])))
        assert sorted(i for p in passes for i in p) == list(range(len(lengths)))
        assert sum(len(p) * max(lengths[i] for i in p) for p in passes) <= budget


def test_packed_rows_are_grouped_by_their_tokens_not_their_padded_size():
    lengths = [250, 200, 256, 30, 240]
    packed = [True, True, True, False, True]
    assert memory.group(lengths, 1000, overhead=128, packed=packed) == [[3], [0, 1, 2, 4]]
    assert memory.group(lengths, 700, overhead=128, packed=packed) == [[3], [0, 1], [2, 4]]
    assert memory.group([900, 50], 600, overhead=0, packed=[True, True]) == [[0], [1]]  # a long row alone


def test_a_packed_row_may_be_longer_than_the_context_but_not_a_document(client):
    context = client.base.max_context
    data = _docs(seed=9, n=3)
    while sum(d.model_input.length for d in data) <= context:
        data = data + data
    (row,) = pack_data(data, 10**6)
    assert row.model_input.length > context
    unpacked = client.forward(data, "cross_entropy").result()
    packed = client.forward([row], "cross_entropy").result()
    assert packed.metrics["loss:sum"] == pytest.approx(unpacked.metrics["loss:sum"], rel=TOL["rtol"])
    long = make_datum(list(range(1, 200)) * (context // 199 + 1))
    with pytest.raises(errors.ContextLengthExceededError, match="longest document"):
        client.forward(pack_data([data[0], long], 10**6), "cross_entropy")


def test_packed_rows_keep_to_the_memory_plan(client, monkeypatch):
    """With room for 60 tokens of activations, packed micro-batches hold at most 60 tokens and their
    documents' passes together pad to at most that; the gradients stay the unpacked batch's."""
    data = _docs(seed=4, n=12)
    unpacked, unpacked_grads = _pass(client, data)
    cost = client.base.activation_cost()
    free = free_for(cost, 60, cost.per_token)
    assert memory.Budget.of(cost, free, 16384, False).tokens == 60
    monkeypatch.setattr(memory, "free_memory", lambda device: free)
    batches: list[list[tuple[int, int]]] = []
    seq, hid = client.base.sequence_logprobs, client.base.hidden_states

    def sequence_logprobs(*args, **kw):
        batches.append([])
        return seq(*args, **kw)

    def hidden_states(batch):
        batches[-1].append((len(batch), max(len(s) for s in batch)))
        return hid(batch)
    monkeypatch.setattr(client.base, "sequence_logprobs", sequence_logprobs)
    monkeypatch.setattr(client.base, "hidden_states", hidden_states)
    packed, packed_grads = _pass(client, pack_data(data, 40))
    assert len(batches) > 1 and all(sum(n * w for n, w in passes) <= 60 for passes in batches)
    assert packed.metrics["loss:sum"] == pytest.approx(unpacked.metrics["loss:sum"], rel=TOL["rtol"])
    _assert_grads(packed_grads, unpacked_grads)
