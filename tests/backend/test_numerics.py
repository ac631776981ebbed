"""Acceptance 2: forward, losses and gradients equal independent reference computations.

The references run in fp32 on the suite's device. In a low-precision dtype the bound is the fp32
tolerance plus the rounding noise of the same reference computed in that dtype (backend_helpers).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from backend_helpers import DEVICE, DTYPE, LOW_PRECISION, assert_close, make_datum, randomize_adapter
from peft_reference import peft_model
from tinker import types

SEQS = [[5, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100], [40, 41, 42], [50 + i for i in range(30)],
        [1, 2, 3, 4, 5, 6, 7, 8]]


@pytest.fixture(scope="module")
def client(service):
    tc = service.create_lora_training_client("tiny", rank=8, seed=3)
    randomize_adapter(tc, seed=1)
    return tc


def _rl_data(seed: int = 0) -> list[types.Datum]:
    rng = np.random.default_rng(seed)
    data = []
    for s in SEQS:
        n = len(s) - 1
        data.append(make_datum(s, logprobs=(-5.0 + rng.normal(0, 0.5, n)).astype(np.float32).tolist(),
                               advantages=rng.normal(0, 1, n).astype(np.float32).tolist()))
    return data


def _peft_reference(client, dtype=torch.float32):
    """The same LoRA model built independently with PEFT on a plain transformers model."""
    return peft_model(client, dtype, DEVICE)


def _ref_logprobs(model, seq: list[int]) -> torch.Tensor:
    ids = torch.tensor([seq[:-1]], device=DEVICE)
    logits = model(input_ids=ids).logits[0].float()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(seq[1:], device=DEVICE)[:, None])[:, 0]


def _ref_loss(name: str, lp: torch.Tensor, d: types.Datum) -> torch.Tensor:
    x = {k: torch.tensor(v.tolist(), device=lp.device) for k, v in d.loss_fn_inputs.items()}
    if name == "cross_entropy":
        return -(lp * x["weights"]).sum()
    ratio = torch.exp(lp - x["logprobs"])
    adv = x["advantages"]
    if name == "importance_sampling":
        return -(ratio * adv).sum()
    if name == "ppo":
        return -torch.minimum(ratio * adv, torch.clamp(ratio, 0.8, 1.2) * adv).sum()
    if name == "cispo":
        return -(torch.clamp(ratio, 0.0, 4.0).detach() * adv * lp).sum()
    if name == "dro":
        return -(lp * adv - 0.5 * 0.05 * (lp - x["logprobs"]) ** 2).sum()
    raise AssertionError(name)


def _merged_model(client, dtype: torch.dtype):
    """Plain transformers with the LoRA delta merged into the weights (in fp32, then cast)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(client.base.location, dtype=torch.float32)
    scale = client.adapter.spec.scale
    with torch.no_grad():
        for name in client.adapter.a:
            delta = client.adapter.b[name].detach().cpu() @ client.adapter.a[name].detach().cpu()
            model.get_submodule(name).weight += scale * delta
    return model.to(DEVICE, dtype)


def test_forward_matches_plain_transformers_with_merged_weights(client):
    exact = _merged_model(client, torch.float32)
    peer = _merged_model(client, DTYPE) if LOW_PRECISION else None
    out = client.forward([make_datum(s) for s in SEQS], "cross_entropy").result()
    for seq, o in zip(SEQS, out.loss_fn_outputs):
        assert_close(o["logprobs"].to_numpy(), _ref_logprobs(exact, seq), atol=1e-5,
                     peer=None if peer is None else _ref_logprobs(peer, seq))


def _peft_loss_and_grads(client, loss: str, data, dtype: torch.dtype) -> tuple[float, dict[str, torch.Tensor]]:
    ref_model = _peft_reference(client, dtype)
    total = sum(_ref_loss(loss, _ref_logprobs(ref_model, s), d) for s, d in zip(SEQS, data))
    total.backward()
    grads = {}
    for name in client.adapter.a:
        module = ref_model.base_model.model.get_submodule(name)
        grads[f"{name}.A"] = module.lora_A["default"].weight.grad
        grads[f"{name}.B"] = module.lora_B["default"].weight.grad
    return float(total.detach()), grads


@pytest.mark.parametrize("loss", ["cross_entropy", "importance_sampling", "ppo", "cispo", "dro"])
def test_builtin_loss_value_and_lora_gradients_match_peft_reference(client, loss):
    data = _rl_data()
    ref_loss, ref_grads = _peft_loss_and_grads(client, loss, data, torch.float32)
    peer_loss, peer_grads = _peft_loss_and_grads(client, loss, data, DTYPE) if LOW_PRECISION else (None, {})

    out = client.forward_backward(data, loss).result()
    try:
        assert_close(out.metrics["loss:sum"], ref_loss, atol=1e-4, rtol=1e-5, peer=peer_loss)
        for name in client.adapter.a:
            for ours, key in ((client.adapter.a[name], f"{name}.A"), (client.adapter.b[name], f"{name}.B")):
                assert_close(ours.grad, ref_grads[key], atol=1e-4, rtol=1e-4, peer=peer_grads.get(key))
    finally:
        for p in client.adapter.parameters():
            p.grad = None


def test_ppo_clip_thresholds_come_from_loss_fn_config(client):
    data = _rl_data(seed=4)
    wide = client.forward(data, "ppo", {"clip_low_threshold": 0.0, "clip_high_threshold": 1e9}).result()
    is_loss = client.forward(data, "importance_sampling").result()
    default = client.forward(data, "ppo").result()
    assert wide.metrics["loss:sum"] == pytest.approx(is_loss.metrics["loss:sum"], rel=1e-6)
    assert default.metrics["loss:sum"] != pytest.approx(is_loss.metrics["loss:sum"], rel=1e-3)


def test_custom_cross_entropy_gives_builtin_gradient(service):
    data = [make_datum(s) for s in SEQS]
    grads = {}
    for mode in ("builtin", "custom"):
        tc = service.create_lora_training_client("tiny", rank=8, seed=3)
        randomize_adapter(tc, seed=2)
        if mode == "builtin":
            out = tc.forward_backward(data, "cross_entropy").result()
        else:
            def ce(batch, logprobs):
                loss = sum(-(lp * torch.tensor(d.loss_fn_inputs["weights"].tolist(), device=lp.device)).sum()
                           for d, lp in zip(batch, logprobs))
                return loss, {"tokens:sum": float(sum(len(lp) for lp in logprobs))}
            out = tc.forward_backward_custom(data, ce).result()
            assert out.metrics["tokens:sum"] == sum(len(s) - 1 for s in SEQS)
        grads[mode] = ([p.grad.clone() for p in tc.adapter.parameters()], out.metrics["loss:sum"])
    assert grads["custom"][1] == pytest.approx(grads["builtin"][1], rel=1e-6)
    for a, b in zip(grads["custom"][0], grads["builtin"][0]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_two_forward_backward_calls_equal_one_on_the_concatenated_batch(service, service_fp32):
    data = [make_datum(s) for s in SEQS]
    weights = {}
    for mode, svc in (("split", service), ("joined", service), ("exact", service_fp32)):
        tc = svc.create_lora_training_client("tiny", rank=8, seed=5)
        if mode == "split":
            tc.forward_backward(data[:2], "cross_entropy")
            tc.forward_backward(data[2:], "cross_entropy")
        else:
            tc.forward_backward(data, "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=1e-2)).result()
        weights[mode] = tc.adapter.state_dict()
    for key in weights["split"]:  # in low precision: the split path no further from fp32 than the joined one
        assert_close(weights["split"][key], weights["exact"][key], atol=1e-6, rtol=1e-5, peer=weights["joined"][key])
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in weights["split"].items() if k.endswith("lora_B"))


def test_requests_run_in_submission_order(service):
    data = [make_datum(s) for s in SEQS]
    tc = service.create_lora_training_client("tiny", rank=8, seed=6)
    before = tc.forward(data, "cross_entropy")
    tc.forward_backward(data, "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=1e-2))
    after = tc.forward(data, "cross_entropy")  # submitted before anything was awaited
    assert after.result().metrics["loss:sum"] < before.result().metrics["loss:sum"]


def test_adamw_matches_torch_adamw_with_decay_and_clipping(service):
    data = [make_datum(s) for s in SEQS]
    tc = service.create_lora_training_client("tiny", rank=8, seed=7)
    randomize_adapter(tc, seed=3)
    params = [p.detach().clone().requires_grad_(True) for p in tc.adapter.parameters()]
    ref = torch.optim.AdamW(params, lr=3e-3, betas=(0.8, 0.9), eps=1e-8, weight_decay=0.1)
    adam = types.AdamParams(learning_rate=3e-3, beta1=0.8, beta2=0.9, eps=1e-8, weight_decay=0.1, grad_clip_norm=0.5)
    for _ in range(2):
        tc.forward_backward(data, "cross_entropy").result()
        grads = [p.grad.clone() for p in tc.adapter.parameters()]
        metrics = tc.optim_step(adam).result().metrics
        for p, g in zip(params, grads):
            p.grad = g
        norm = torch.nn.utils.clip_grad_norm_(params, 0.5)
        assert metrics["grad_norm:mean"] == pytest.approx(float(norm), rel=1e-5)
        ref.step()
    for ours, theirs in zip(tc.adapter.parameters(), params):
        torch.testing.assert_close(ours.detach(), theirs.detach(), atol=1e-7, rtol=1e-6)


def test_activation_checkpointing_gives_the_same_gradients(service, tmp_path, monkeypatch):
    import cookbook
    from cookbook.backend.local import Engine
    from cookbook.backend.local import model as model_module

    calls = []
    real_checkpoint = model_module.checkpoint
    monkeypatch.setattr(model_module, "checkpoint",
                        lambda fn, *a, **k: calls.append(fn) or real_checkpoint(fn, *a, **k))
    data = [make_datum(s) for s in SEQS]
    checkpointed = cookbook.service_client(engine=Engine(str(DEVICE), DTYPE, activation_checkpointing=True),
                                           checkpoint_root=tmp_path)
    grads = []
    for svc in (service, checkpointed):
        tc = svc.create_lora_training_client("tiny", rank=8, seed=9)
        randomize_adapter(tc, seed=9)
        out = tc.forward_backward(data, "cross_entropy").result()
        grads.append((out.metrics["loss:sum"], [p.grad.clone() for p in tc.adapter.parameters()]))
    layers = checkpointed.engine.model("tiny").model.config.num_hidden_layers
    assert sum(fn.__name__ == "forward" for fn in calls) >= layers  # every decoder layer was recomputed
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    checkpointed.engine.close()


def _lora_grads(client) -> dict[str, torch.Tensor]:
    return {**{f"{n}.A": client.adapter.a[n].grad for n in client.adapter.a},
            **{f"{n}.B": client.adapter.b[n].grad for n in client.adapter.b}}


def _peft_grads(ref_model, client) -> dict[str, torch.Tensor]:
    grads = {}
    for name in client.adapter.a:
        module = ref_model.base_model.model.get_submodule(name)
        grads[f"{name}.A"] = module.lora_A["default"].weight.grad
        grads[f"{name}.B"] = module.lora_B["default"].weight.grad
    return grads


@pytest.mark.skipif(LOW_PRECISION, reason="fp32 comparison (the bf16 bounds are the other losses' test)")
def test_gspo_loss_and_lora_gradients_match_an_independent_computation(client):
    """GSPO: the sequence ratio (mean log-ratio over ``sequence_ratio_mask``) with each token's own
    gradient, clipped like PPO; computed by hand on a PEFT model. Mask patterns: all, part, none."""
    data = _rl_data(seed=3)
    masks = [[1.0] * (len(s) - 1) for s in SEQS]
    masks[1] = [0.0] + [1.0] * (len(SEQS[1]) - 2)
    masks[3] = [0.0] * (len(SEQS[3]) - 1)  # no position in the ratio: ratio 1
    data = [make_datum(s, logprobs=d.loss_fn_inputs["logprobs"].tolist(),
                       advantages=d.loss_fn_inputs["advantages"].tolist(), sequence_ratio_mask=m)
            for s, d, m in zip(SEQS, data, masks)]
    config = {"clip_low_threshold": 0.5, "clip_high_threshold": 1.5}
    ref_model = _peft_reference(client)
    total = torch.zeros(())
    for seq, mask, d in zip(SEQS, masks, data):
        lp = _ref_logprobs(ref_model, seq).cpu()  # the hand computation runs on the CPU
        q = torch.tensor(d.loss_fn_inputs["logprobs"].tolist())
        adv = torch.tensor(d.loss_fn_inputs["advantages"].tolist())
        m = torch.tensor(mask)
        seq_log_ratio = ((lp.detach() - q) * m).sum() / m.sum() if m.sum() > 0 else torch.zeros(())
        s = torch.exp(seq_log_ratio) * torch.exp(lp - lp.detach())
        total = total - torch.minimum(s * adv, torch.clamp(s, 0.5, 1.5) * adv).sum()
    total.backward()
    try:
        out = client.forward_backward(data, "gspo", config).result()
        assert_close(out.metrics["loss:sum"], float(total.detach()), atol=1e-4, rtol=1e-5)
        ref_grads, ours = _peft_grads(ref_model, client), _lora_grads(client)
        for key, grad in ours.items():
            assert_close(grad, ref_grads[key], atol=1e-4, rtol=1e-4)
    finally:
        for p in client.adapter.parameters():
            p.grad = None


@pytest.mark.skipif(LOW_PRECISION, reason="fp32 comparison (the bf16 bounds are the other losses' test)")
def test_stable_reinforce_loss_and_lora_gradients_match_an_independent_computation(service):
    """StableReinforce on sequences sampled with ``record_stability_info``, trained after the weights
    moved (so the importance weights differ from 1 and some hit the cap): the behaviour logprobs are
    the sampler's (not the datum's ``logprobs``, which is garbage here), prompt tokens do not count,
    and the loss is ``-sg(min(w, cap)) * A * logp + kl_coeff * (w - 1 - log w)``, checked on PEFT."""
    from cookbook.rl.provenance import Run, with_provenance

    tc = service.create_lora_training_client("tiny", rank=8, seed=4)
    randomize_adapter(tc, seed=5)
    sampler = tc.save_weights_and_get_sampling_client(record_stability_info=True)
    prompt = [5, 72, 101, 108]
    out = sampler.sample(types.ModelInput.from_ints(prompt), 3,
                         types.SamplingParams(max_tokens=6, temperature=1.0, seed=2)).result()
    randomize_adapter(tc, seed=6, scale=0.08)  # the trainer has moved on since sampling
    rng = np.random.default_rng(1)
    data, seqs, behaviour = [], [], []
    for s in out.sequences:
        tokens, n = prompt + list(s.tokens), len(prompt) - 1
        d = make_datum(tokens, logprobs=[-99.0] * (len(tokens) - 1),
                       advantages=rng.normal(0, 1, len(tokens) - 1).astype(np.float32).tolist())
        data.append(with_provenance(d, [Run(s.sequence_id, False, 0, len(prompt)),
                                        Run(s.sequence_id, True, 0, len(s.tokens))]))
        seqs.append(tokens)
        behaviour.append(torch.tensor([0.0] * n + list(s.logprobs)))
    config = {"clip_high_threshold": 0.5, "kl_coeff": 0.3}  # a cap below 1: moved weights make most w < 1
    ref_model = _peft_reference(tc)
    total, capped = torch.zeros(()), 0
    for seq, d, b in zip(seqs, data, behaviour):
        lp = _ref_logprobs(ref_model, seq).cpu()  # the hand computation runs on the CPU
        n = len(prompt) - 1
        sampled = torch.tensor([0.0] * n + [1.0] * (len(seq) - 1 - n))
        adv = torch.tensor(d.loss_fn_inputs["advantages"].tolist())
        log_w = (lp - b) * sampled
        w = torch.exp(log_w)
        capped += int(((w.detach() > 0.5) & (sampled > 0)).sum())
        total = total - (torch.clamp(w.detach(), max=0.5) * adv * lp * sampled).sum() + 0.3 * (
            (w - 1 - log_w) * sampled).sum()
    assert capped > 0  # the cap is exercised
    total.backward()
    result = tc.forward_backward(data, "stable_reinforce", config).result()
    assert_close(result.metrics["loss:sum"], float(total.detach()), atol=1e-4, rtol=1e-5)
    ref_grads = _peft_grads(ref_model, tc)
    for key, grad in _lora_grads(tc).items():
        assert_close(grad, ref_grads[key], atol=1e-4, rtol=1e-4)
