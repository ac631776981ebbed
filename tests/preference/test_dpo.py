"""The DPO loss and gradients against an independent computation, and the loop's reference cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tinker import types

import cookbook
from cookbook.preference.data import addition_comparisons, comparisons_to_pairs
from cookbook.preference.train import DPOConfig, dpo_loss_fn, train
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return cookbook.service_client(checkpoint_root=tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def pairs():
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    return comparisons_to_pairs(addition_comparisons(16, seed=3), renderer)


def _grads(tc):
    grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in tc.adapter.parameters()]
    for p in tc.adapter.parameters():
        p.grad = None
    return grads


def test_loss_and_gradients_match_an_independent_computation(service, pairs):
    tc = service.create_lora_training_client("tiny", rank=4, seed=1)
    warm = [d for pair in pairs[8:] for d in pair]  # move LoRA B off zero so every parameter gets a gradient
    tc.forward_backward(warm, "cross_entropy").result()
    tc.optim_step(types.AdamParams(learning_rate=2e-2)).result()
    batch = pairs[:4]
    data = [d for pair in batch for d in pair]
    refs = [(-3.0 + 0.5 * i, -2.5 - 0.25 * i) for i in range(len(batch))]
    beta, sft_weight = 0.7, 0.5

    out = tc.forward_backward_custom(data, dpo_loss_fn(refs, beta, sft_weight)).result()
    custom = _grads(tc)

    # Independent: sequence logprobs from a plain forward, the loss in float64 by hand.
    outputs = tc.forward(data, "cross_entropy").result().loss_fn_outputs
    lps = [o["logprobs"].to_numpy().astype(np.float64) for o in outputs]
    w = [d.loss_fn_inputs["weights"].to_numpy().astype(np.float64) for d in data]
    seq = [float((lp * wi).sum()) for lp, wi in zip(lps, w)]
    n = len(batch)
    margins = [beta * ((seq[2 * i] - refs[i][0]) - (seq[2 * i + 1] - refs[i][1])) for i in range(n)]
    chosen_tokens = sum(w[2 * i].sum() for i in range(n))
    nll = -sum(seq[2 * i] for i in range(n)) / chosen_tokens
    expected = sum(math.log1p(math.exp(-m)) for m in margins) / n + sft_weight * nll
    assert out.metrics["loss:sum"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert out.metrics["dpo/accuracy"] == pytest.approx(sum(m > 0 for m in margins) / n)
    assert out.metrics["dpo/margin"] == pytest.approx(sum(margins) / n, rel=1e-5, abs=1e-6)

    # d loss / d seq: chosen -beta*sigmoid(-m)/n - sft_weight/chosen_tokens, rejected +beta*sigmoid(-m)/n.
    # cross_entropy with weights c * w has gradient -c * d seq, so the chosen side (c > 0) and the
    # rejected side (sign flipped to keep weights positive) are two passes.
    sig = [1.0 / (1.0 + math.exp(m)) for m in margins]
    chosen_data, rejected_data = [], []
    for i in range(n):
        c = beta * sig[i] / n + sft_weight / chosen_tokens
        chosen_data.append(_reweighted(data[2 * i], c))
        rejected_data.append(_reweighted(data[2 * i + 1], beta * sig[i] / n))
    tc.forward_backward(chosen_data, "cross_entropy").result()
    g_chosen = _grads(tc)
    tc.forward_backward(rejected_data, "cross_entropy").result()
    g_rejected = _grads(tc)
    assert any(g.abs().sum() > 0 for g in custom)
    for g, gc, gr in zip(custom, g_chosen, g_rejected):
        torch.testing.assert_close(g, gc - gr, rtol=1e-4, atol=1e-6)


def _reweighted(datum, scale):
    weights = (datum.loss_fn_inputs["weights"].to_numpy() * scale).tolist()
    return types.Datum(model_input=datum.model_input,
                       loss_fn_inputs={"target_tokens": datum.loss_fn_inputs["target_tokens"].to_numpy().tolist(),
                                       "weights": weights})


class CountingSampler:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def compute_logprobs(self, prompt):
        self.calls += 1
        return self.inner.compute_logprobs(prompt)

    def sample(self, *args, **kwargs):
        return self.inner.sample(*args, **kwargs)


def test_reference_logprobs_are_computed_once_per_example(service, pairs, tmp_path):
    train_pairs, test_pairs = pairs[:8], pairs[8:12]
    reference = CountingSampler(service.create_sampling_client(base_model="tiny"))
    config = DPOConfig(lora_rank=4, learning_rate=1e-2, batch_size=4, num_epochs=3, eval_every=2, beta=0.5,
                       log_path=str(tmp_path / "run"), progress=False)
    result = train(config, train_pairs, test_pairs, service=service, reference=reference)
    assert result.steps == 6  # 3 epochs of 2 batches
    assert reference.calls == 2 * (len(train_pairs) + len(test_pairs)) == result.reference_calls
    rows = result.metrics
    assert len(rows) == 6
    for key in ("dpo/loss", "dpo/accuracy", "dpo/margin", "dpo/chosen_reward", "dpo/rejected_reward",
                "learning_rate", "optim/grad_norm"):
        assert all(key in r for r in rows), key
    assert rows[0]["dpo/loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at the start
    assert sum("test/accuracy" in r for r in rows) == 3 and "test/policy_accuracy" in rows[-1]
    # a rerun of the finished run trains nothing and computes no reference
    again = train(config, train_pairs, test_pairs, service=service, reference=CountingSampler(reference.inner))
    assert again.reference_calls == 0 and again.final_state_path == result.final_state_path
