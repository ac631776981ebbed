"""Off-policy top-K distillation: the teacher's top-K datums and the student's cross-entropy on them equal
an independent computation (plain transformers for the teacher, PEFT for the student: loss and LoRA
gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from peft_reference import peft_model
from tinker import types

import cookbook
from cookbook.datums import next_token_datum
from cookbook.distill.topk import teacher_topk_data, topk_datum
from cookbook.errors import ConfigError, DataError

SEQS = [[5, 72, 101, 108, 108, 111, 32, 119, 111], [40, 41, 42, 43, 44], [60 + i for i in range(14)]]
K = 4


def _randomize(client, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    sd = client.adapter.state_dict()
    client.adapter.load_state_dict({k: torch.randn(v.shape, generator=gen) * 0.05 for k, v in sd.items()})


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return cookbook.service_client("local", device="cpu", dtype="float32",
                                   checkpoint_root=tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def clients(service):
    teacher = service.create_lora_training_client("tiny", rank=8, seed=1)
    _randomize(teacher, 1)
    student = service.create_lora_training_client("tiny", rank=8, seed=2)
    _randomize(student, 2)
    return teacher, teacher.save_weights_and_get_sampling_client("teacher"), student


def _data() -> list[types.Datum]:
    data = []
    for s in SEQS:
        weights = [0.0] * (len(s) - 3) + [1.0, 0.5, 1.0]  # only the "answer" positions are trained
        datum = next_token_datum(s, weights)
        assert datum is not None
        data.append(datum)
    return data


def _merged(client):
    model = transformers.AutoModelForCausalLM.from_pretrained(client.base.location, dtype=torch.float32)
    with torch.no_grad():
        for name in client.adapter.a:
            delta = client.adapter.b[name].detach() @ client.adapter.a[name].detach()
            model.get_submodule(name).weight += client.adapter.spec.scale * delta
    return model


def test_student_cross_entropy_on_teacher_topk_equals_an_independent_computation(clients):
    teacher_client, teacher, student = clients
    distill = teacher_topk_data(teacher, _data(), K, chunk=2)
    assert [np.asarray(d.loss_fn_inputs["target_tokens"].to_numpy()).shape for d in distill] == \
        [(len(s) - 1, K) for s in SEQS]

    teacher_model, student_model = _merged(teacher_client), peft_model(student)
    ref_loss = torch.zeros(())
    for seq, datum in zip(SEQS, _data()):
        ids = torch.tensor([seq[:-1]])
        with torch.no_grad():
            top = torch.topk(torch.log_softmax(teacher_model(input_ids=ids).logits[0], -1), K, dim=-1)
        p = torch.softmax(top.values, -1)  # renormalised over the K
        w = torch.tensor(np.asarray(datum.loss_fn_inputs["weights"].to_numpy()))
        logq = torch.log_softmax(student_model(input_ids=ids).logits[0], -1)
        ref_loss = ref_loss - (w[:, None] * p * logq.gather(-1, top.indices)).sum()
        got = next(d for d in distill if d.model_input.to_ints() == seq[:-1])
        trained = w > 0
        np.testing.assert_array_equal(np.asarray(got.loss_fn_inputs["target_tokens"].to_numpy())[trained.numpy()],
                                      top.indices[trained].numpy())
    ref_loss.backward()

    out = student.forward_backward(distill, "cross_entropy").result()
    try:
        assert out.metrics["loss:sum"] == pytest.approx(float(ref_loss.detach()), rel=1e-4)
        for name in student.adapter.a:
            module = student_model.base_model.model.get_submodule(name)
            torch.testing.assert_close(student.adapter.a[name].grad, module.lora_A["default"].weight.grad,
                                       atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(student.adapter.b[name].grad, module.lora_B["default"].weight.grad,
                                       atol=1e-5, rtol=1e-4)
    finally:
        for p in student.adapter.parameters():
            p.grad = None


def test_weights_are_the_teacher_probabilities_times_the_position_weight():
    datum = next_token_datum([1, 2, 3, 4], [0.0, 0.0, 2.0, 1.0])
    assert datum is not None
    topk = [None, [(7, -0.1), (8, -3.0)], [(9, np.log(0.6)), (10, np.log(0.2))], [(11, np.log(0.5)), (12, -9.0)]]
    out = topk_datum(datum, topk, 2, temperature=1.0)
    weights = np.asarray(out.loss_fn_inputs["weights"].to_numpy())
    targets = np.asarray(out.loss_fn_inputs["target_tokens"].to_numpy())
    np.testing.assert_allclose(weights[0], [0, 0])  # untrained position
    np.testing.assert_allclose(weights[1], [2 * 0.75, 2 * 0.25], rtol=1e-6)
    assert targets[1].tolist() == [9, 10] and targets[2].tolist() == [11, 12]
    assert weights[2].sum() == pytest.approx(1.0)
    hot = topk_datum(datum, topk, 2, temperature=0.5)  # sharper: p^2 renormalised
    np.testing.assert_allclose(np.asarray(hot.loss_fn_inputs["weights"].to_numpy())[1], [2 * 0.9, 2 * 0.1], rtol=1e-6)
    with pytest.raises(DataError, match="top-k rows"):
        topk_datum(datum, topk[:2], 2)


def test_bad_options_are_config_errors(clients):
    _, teacher, _ = clients
    with pytest.raises(ConfigError, match="topk"):
        teacher_topk_data(teacher, _data(), 0)
    with pytest.raises(ConfigError, match="temperature"):
        teacher_topk_data(teacher, _data(), 2, temperature=0.0)
