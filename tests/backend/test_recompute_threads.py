"""Recomputation in backward sees the forward's adapters, whatever thread runs the backward.

On CUDA, autograd runs backward (and so every checkpoint recomputation) on a device thread of its
own, not on the thread that ran the forward. Running the backward from another thread on CPU puts
the recomputation in the same situation without a GPU.
"""

from __future__ import annotations

import threading

import pytest
import torch
from backend_helpers import make_datum, randomize_adapter

from cookbook.backend.local import lora
from cookbook.backend.local import model as model_module

SEQS = [[5, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100], [40, 41, 42], [50 + i for i in range(30)]]


def _grads_backward_elsewhere(base, adapter) -> tuple[float, list[torch.Tensor]]:
    """Forward under the adapter's routing here; backward on another thread, after the routing ended."""
    data = [make_datum(s) for s in SEQS]
    params = adapter.parameters()
    with lora.use_adapters(adapter), torch.enable_grad():
        lps = base.sequence_logprobs([d.model_input.to_ints() for d in data],
                                     [torch.tensor(d.loss_fn_inputs["target_tokens"].tolist()) for d in data])
        loss = -sum(lp.sum() for lp in lps)
    result: dict = {}

    def backward() -> None:
        try:
            result["grads"] = torch.autograd.grad(loss, params)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            result["error"] = exc

    worker = threading.Thread(target=backward)
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return float(loss.detach()), [g.clone() for g in result["grads"]]


@pytest.fixture()
def client(service):
    tc = service.create_lora_training_client("tiny", rank=8, seed=5, train_unembed=True)
    randomize_adapter(tc, seed=5)
    return tc


def _reference(client) -> tuple[float, list[torch.Tensor]]:
    """The same gradients with nothing recomputed."""
    return client.service.engine.call(lambda: _grads_backward_elsewhere(client.base, client.adapter))


def _assert_same(a, b) -> None:
    assert a[0] == pytest.approx(b[0], rel=1e-6)
    for x, y in zip(a[1], b[1]):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)
    assert any(float(g.abs().sum()) > 0 for g in b[1])


def test_chunked_logprobs_recomputed_on_another_thread(client, monkeypatch):
    expected = _reference(client)
    recomputed = []
    real_checkpoint = model_module.checkpoint
    monkeypatch.setattr(model_module, "checkpoint",
                        lambda fn, *a, **k: recomputed.append(fn) or real_checkpoint(fn, *a, **k))
    monkeypatch.setattr(model_module, "LOGITS_KEEP_BYTES", 0)  # every chunk's logits are recomputed
    got = client.service.engine.call(lambda: _grads_backward_elsewhere(client.base, client.adapter))
    assert recomputed, "the logits were not recomputed"
    _assert_same(got, expected)


def test_checkpointed_layers_recomputed_on_another_thread(client, monkeypatch):
    expected = _reference(client)
    recomputed = []
    real_checkpoint = model_module.checkpoint
    monkeypatch.setattr(model_module, "checkpoint",
                        lambda fn, *a, **k: recomputed.append(fn) or real_checkpoint(fn, *a, **k))

    def run():
        with client.base.layer_checkpointing(True):
            return _grads_backward_elsewhere(client.base, client.adapter)
    got = client.service.engine.call(run)
    assert len(recomputed) == len(client.base.model.get_decoder().layers), "the decoder layers were not checkpointed"
    _assert_same(got, expected)
