"""Acceptance 5: several training clients on one base model train independently and share it."""

from __future__ import annotations

import time

import torch
from backend_helpers import make_datum
from tinker import types

DATA_A = [make_datum([65, 66, 67, 68, 69, 70])]
DATA_B = [make_datum([122, 121, 120, 119, 118])]
ADAM = types.AdamParams(learning_rate=1e-2)


def _train(tc, data, steps=3):
    for _ in range(steps):
        tc.forward_backward(data, "cross_entropy")
        step = tc.optim_step(ADAM)
    step.result()


def test_clients_train_independently_and_share_the_base(service):
    solo = service.create_lora_training_client("tiny", rank=8, seed=31)
    _train(solo, DATA_A)
    solo.optim_step(ADAM).result()

    base_before = {k: v.clone() for k, v in solo.base.model.state_dict().items()}
    a = service.create_lora_training_client("tiny", rank=8, seed=31)
    b = service.create_lora_training_client("tiny", rank=8, seed=32, train_mlp=False)
    for _ in range(3):  # interleaved requests on two adapters
        a.forward_backward(DATA_A, "cross_entropy")
        b.forward_backward(DATA_B, "cross_entropy")
        b.optim_step(ADAM)
        a.optim_step(ADAM)
    a.optim_step(ADAM).result()
    b.optim_step(ADAM).result()

    for key, value in solo.adapter.state_dict().items():  # b's training did not leak into a
        assert torch.equal(value, a.adapter.state_dict()[key])
    assert not any("mlp" in name for name in b.adapter.a)

    # one frozen base, shared: same module, same storage, unchanged by training
    assert a.base is b.base is solo.base
    for key, value in a.base.model.state_dict().items():
        assert torch.equal(value, base_before[key]), key
    assert all(not p.requires_grad for p in a.base.model.parameters())

    # what a client owns is its adapter: none of its tensors alias (or copy) the base weights
    base_bytes = sum(p.numel() * p.element_size() for p in a.base.model.parameters())
    base_ptrs = {p.data_ptr() for p in a.base.model.parameters()}
    assert not base_ptrs & {p.data_ptr() for p in b.adapter.parameters()}
    assert b.adapter.num_bytes() < base_bytes / 3


def test_base_model_loaded_once_per_engine(service):
    first = service.create_lora_training_client("tiny", rank=4)
    second = service.create_sampling_client(base_model="tiny")
    assert first.base.model is second.base.model
    assert list(service.engine._models) == ["tiny"]


def test_eight_adapters_sampled_in_one_batch_match_each_alone(service):
    from backend_helpers import randomize_adapter

    clients = [service.create_lora_training_client("tiny", rank=8, seed=i) for i in range(8)]
    for i, tc in enumerate(clients):
        randomize_adapter(tc, seed=100 + i, scale=0.3)
    samplers = [tc.save_weights_and_get_sampling_client() for tc in clients]
    samplers.append(service.create_sampling_client(base_model="tiny"))
    prompt = types.ModelInput.from_ints([72, 105, 33])
    params = types.SamplingParams(max_tokens=12, temperature=0.0, stop=[])
    alone = [s.sample(prompt, 2, params).result() for s in samplers]

    engine = service.engine
    batches = engine.stats["sample_batches"]
    busy = engine.submit(lambda: time.sleep(0.3))  # hold the worker so that all requests queue up
    together = [s.sample(prompt, 2, params) for s in samplers]  # -> one mixed decode batch
    busy.result()
    together = [f.result() for f in together]
    assert engine.stats["sample_batches"] - batches == 1
    for a, b in zip(alone, together):
        assert [s.tokens for s in a.sequences] == [s.tokens for s in b.sequences]
    assert len({tuple(r.sequences[0].tokens) for r in alone}) > 1  # the adapters really differ
