"""Every preference loss (DPO variants, reference-free losses, KTO) against an independent computation.

The loss is written again here from the papers' formulas in float64 numpy over sequence logprobs taken
from a plain ``forward``; its gradient with respect to each sequence logprob is taken by central finite
differences of that formula, and the LoRA gradient it implies is produced by ``cross_entropy`` with
per-token weights ``-dL/dseq * w`` (cross-entropy's gradient is minus the weighted logprob gradient).
Both must equal what ``forward_backward_custom`` computes with the loop's loss function.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tinker import types

import cookbook
from cookbook.errors import ConfigError
from cookbook.preference.data import addition_comparisons, comparisons_to_pairs, labeled_to_items, unpaired
from cookbook.preference.losses import PREFERENCE_LOSSES, REFERENCE_FREE, LossSettings
from cookbook.preference.train import DPOConfig, preference_loss_fn
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def pair_loss(kind: str, s: LossSettings, pc, pr, rc, rr, nc, nr) -> float:
    """The mean loss over comparisons, from the papers (see cookbook/preference/losses.py for the table)."""
    b, e, n = s.beta, s.label_smoothing, len(pc)
    total = 0.0
    for i in range(n):
        h = (pc[i] - rc[i]) - (pr[i] - rr[i])
        if kind == "dpo":
            total += -logsig(b * h)
        elif kind == "cdpo":  # the expected DPO loss when each label is flipped with probability e
            total += (1 - e) * -logsig(b * h) + e * -logsig(-b * h)
        elif kind == "robust":  # the unbiased estimate of the clean loss under flip probability e
            total += ((1 - e) * -logsig(b * h) - e * -logsig(-b * h)) / (1 - 2 * e)
        elif kind == "ipo":
            total += (h - 1 / (2 * b)) ** 2
        elif kind == "hinge":
            total += max(0.0, 1 - b * h)
        elif kind == "simpo":
            total += -logsig(b * pc[i] / nc[i] - b * pr[i] / nr[i] - s.simpo_gamma)
        elif kind == "cpo":
            total += -logsig(b * pc[i] - b * pr[i])
        elif kind == "orpo":
            odds = [math.log(math.exp(lp) / (1 - math.exp(lp))) for lp in (pc[i] / nc[i], pr[i] / nr[i])]
            total += b * -logsig(odds[0] - odds[1])
    loss = total / n
    nll = -sum(pc) / sum(nc)
    return loss + ((1.0 if kind in ("cpo", "orpo") else 0.0) + s.sft_weight) * nll


def kto_loss(s: LossSettings, p, r, kl_p, kl_r, desirable) -> float:
    z = max(0.0, float(np.mean(np.asarray(kl_p) - np.asarray(kl_r))))
    per = [s.desirable_weight * (1 - sig(s.beta * (p[i] - r[i] - z))) if desirable[i]
           else s.undesirable_weight * (1 - sig(s.beta * (z - (p[i] - r[i])))) for i in range(len(p))]
    return float(np.mean(per))


def finite_difference(f, x: list[float], eps: float = 1e-5) -> list[float]:
    grads = []
    for i in range(len(x)):
        up, down = list(x), list(x)
        up[i] += eps
        down[i] -= eps
        grads.append((f(up) - f(down)) / (2 * eps))
    return grads


@pytest.fixture(scope="module")
def renderer():
    return get_renderer("tiny", get_tokenizer("tiny"))


@pytest.fixture(scope="module")
def client(tmp_path_factory, renderer):
    service = cookbook.service_client(checkpoint_root=tmp_path_factory.mktemp("ckpt"))
    tc = service.create_lora_training_client("tiny", rank=4, seed=1)
    warm = [d for pair in comparisons_to_pairs(addition_comparisons(8, seed=5), renderer) for d in pair]
    tc.forward_backward(warm, "cross_entropy").result()  # move LoRA B off zero so every parameter gets a gradient
    tc.optim_step(types.AdamParams(learning_rate=2e-2)).result()
    return tc


def _grads(tc):
    grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in tc.adapter.parameters()]
    for p in tc.adapter.parameters():
        p.grad = None
    return grads


def _check(tc, data, loss_fn, expected_loss, dloss_dseq):
    """forward_backward_custom with ``loss_fn`` against the expected loss and d loss / d sequence logprob."""
    out = tc.forward_backward_custom(data, loss_fn).result()
    custom = _grads(tc)
    assert out.metrics["loss:sum"] == pytest.approx(expected_loss, rel=1e-5, abs=1e-6)
    weighted = [types.Datum(model_input=d.model_input, loss_fn_inputs={
        "target_tokens": d.loss_fn_inputs["target_tokens"].to_numpy().tolist(),
        "weights": (-c * d.loss_fn_inputs["weights"].to_numpy().astype(np.float64)).tolist()})
        for d, c in zip(data, dloss_dseq)]
    tc.forward_backward(weighted, "cross_entropy").result()
    expected = _grads(tc)
    assert any(g.abs().sum() > 0 for g in custom)
    for g, e in zip(custom, expected):
        torch.testing.assert_close(g, e, rtol=2e-4, atol=1e-4 * float(e.abs().max()) + 1e-9)
    return out


def _sequence_logprobs(tc, data):
    outputs = tc.forward(data, "cross_entropy").result().loss_fn_outputs
    lps = [o["logprobs"].to_numpy().astype(np.float64) for o in outputs]
    w = [d.loss_fn_inputs["weights"].to_numpy().astype(np.float64) for d in data]
    return [float((lp * wi).sum()) for lp, wi in zip(lps, w)], [float(wi.sum()) for wi in w]


SETTINGS = {
    "dpo": dict(beta=0.7, sft_weight=0.25),
    "cdpo": dict(beta=0.7, label_smoothing=0.2),
    "robust": dict(beta=0.7, label_smoothing=0.2),
    "ipo": dict(beta=0.3),
    "hinge": dict(beta=0.4),
    "simpo": dict(beta=2.0, simpo_gamma=0.3),
    "cpo": dict(beta=0.5),
    "orpo": dict(beta=0.2),
}


@pytest.mark.parametrize("kind", [k for k in PREFERENCE_LOSSES if k != "kto"])
def test_pairwise_loss_and_gradients_match_an_independent_computation(client, renderer, kind):
    pairs = comparisons_to_pairs(addition_comparisons(4, seed=3), renderer)
    data = [d for pair in pairs for d in pair]
    n = len(pairs)
    if kind in REFERENCE_FREE:
        refs = [(0.0, 0.0)] * n
    elif kind == "hinge":  # references that leave some pairs inside the hinge and some outside it
        seq, _ = _sequence_logprobs(client, data)
        refs = [(seq[2 * i] - 1.0, seq[2 * i + 1] + (-5.0 if i % 2 else 2.0)) for i in range(n)]
    else:
        refs = [(-3.0 + 0.5 * i, -2.5 - 0.25 * i) for i in range(n)]
    settings = LossSettings(kind, **SETTINGS[kind])
    seq, tokens = _sequence_logprobs(client, data)

    def loss(x):
        return pair_loss(kind, settings, x[0::2], x[1::2], [r[0] for r in refs], [r[1] for r in refs],
                         tokens[0::2], tokens[1::2])

    if kind == "hinge":
        margins = [settings.beta * ((seq[2 * i] - refs[i][0]) - (seq[2 * i + 1] - refs[i][1])) for i in range(n)]
        assert min(margins) < 1 < max(margins)  # both sides of the hinge are exercised
    out = _check(client, data, preference_loss_fn(settings, refs), loss(seq), finite_difference(loss, seq))
    assert 0 <= out.metrics["dpo/accuracy"] <= 1 and "dpo/margin" in out.metrics


def test_kto_loss_and_gradients_match_an_independent_computation(client, renderer):
    labeled = unpaired(addition_comparisons(6, seed=4))
    items = labeled_to_items(labeled, renderer, seed=2)
    assert [i.desirable for i in items] == [True, False] * 3
    for item in items:  # the KL datum keeps the prompt and takes another completion
        assert item.kl_datum.model_input.to_ints() != item.datum.model_input.to_ints()
    data = [d for item in items for d in item[:2]]
    refs = [(-4.0 + 0.3 * i, -6.0 - 0.2 * i) for i in range(len(items))]
    settings = LossSettings("kto", beta=0.6, desirable_weight=1.0, undesirable_weight=1.5)
    seq, _ = _sequence_logprobs(client, data)
    desirable = [i.desirable for i in items]
    kl_p = seq[1::2]  # the KL estimate is not differentiated (the paper's implementation detaches it)

    def loss(x):
        return kto_loss(settings, x, [r[0] for r in refs], kl_p, [r[1] for r in refs], desirable)

    grads = finite_difference(loss, seq[0::2])
    dloss = [g for pair in zip(grads, [0.0] * len(grads)) for g in pair]
    out = _check(client, data, preference_loss_fn(settings, refs, items), loss(seq[0::2]), dloss)
    assert out.metrics["dpo/kl"] >= 0 and "dpo/chosen_reward" in out.metrics


def test_loss_options_are_checked_when_parsed():
    with pytest.raises(ConfigError, match="label_smoothing"):
        DPOConfig(loss_type="robust", label_smoothing=0.5)
    assert DPOConfig(loss_type="simpo").uses_reference is False
    assert DPOConfig(loss_type="kto").uses_reference is True
    assert DPOConfig(reference_free=True).uses_reference is False
