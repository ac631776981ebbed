"""Acceptance 1: the Tinker quickstart runs with only the service-client line changed."""

from __future__ import annotations

import asyncio

import numpy as np
from tinker import types

import cookbook

EXAMPLES = [
    {"input": "banana split", "output": "anana-splay"},
    {"input": "quantum physics", "output": "uantum-qay ysics-phay"},
    {"input": "donut shop", "output": "onut-day op-shay"},
    {"input": "pickle jar", "output": "ickle-pay ar-jay"},
    {"input": "space exploration", "output": "ace-spay exploration-way"},
    {"input": "rubber duck", "output": "ubber-ray uck-day"},
    {"input": "coding wizard", "output": "oding-cay izard-way"},
]


def process_example(example: dict, tokenizer) -> types.Datum:
    prompt = f"English: {example['input']}\nPig Latin:"
    prompt_tokens = tokenizer.encode(prompt, add_special_tokens=True)
    completion_tokens = tokenizer.encode(f" {example['output']}\n\n", add_special_tokens=False)
    tokens = prompt_tokens + completion_tokens
    weights = [0] * len(prompt_tokens) + [1] * len(completion_tokens)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens=tokens[:-1]),
        loss_fn_inputs=dict(weights=weights[1:], target_tokens=tokens[1:]),
    )


def test_tinker_quickstart_runs_unchanged(tmp_path):
    service_client = cookbook.service_client(checkpoint_root=tmp_path)  # the only changed line
    training_client = service_client.create_lora_training_client(base_model="tiny", rank=32)
    tokenizer = training_client.get_tokenizer()
    processed = [process_example(ex, tokenizer) for ex in EXAMPLES]

    futures = []
    for _ in range(6):
        fwdbwd = training_client.forward_backward(processed, "cross_entropy")
        optim = training_client.optim_step(types.AdamParams(learning_rate=1e-3))
        futures.append((fwdbwd, optim))
    per_token = []
    for fwdbwd, optim in futures:
        result, _ = fwdbwd.result(), optim.result()
        logprobs = np.concatenate([o["logprobs"].tolist() for o in result.loss_fn_outputs])
        weights = np.concatenate([d.loss_fn_inputs["weights"].tolist() for d in processed])
        per_token.append(-np.dot(logprobs, weights) / weights.sum())
        assert abs(result.metrics["loss:sum"] - (-np.dot(logprobs, weights))) < 1e-3
    assert all(b < a for a, b in zip(per_token, per_token[1:])), per_token

    sampling_client = training_client.save_weights_and_get_sampling_client()
    prompt = types.ModelInput.from_ints(tokenizer.encode("English: coffee break\nPig Latin:"))
    params = types.SamplingParams(max_tokens=20, temperature=0.0, stop=["\n"])
    result = sampling_client.sample(prompt=prompt, sampling_params=params, num_samples=8).result()
    assert len(result.sequences) == 8
    for seq in result.sequences:
        assert 1 <= len(seq.tokens) <= 20
        assert len(seq.logprobs) == len(seq.tokens)
        assert seq.stop_reason in ("stop", "length")


def test_futures_are_awaitable_and_factories_accept_result(tmp_path):
    service = cookbook.service_client(checkpoint_root=tmp_path)
    tc = service.create_lora_training_client(base_model="tiny", rank=4).result()  # SDK future style
    datum = types.Datum(model_input=types.ModelInput.from_ints([1, 2, 3]),
                        loss_fn_inputs=dict(target_tokens=[2, 3, 4], weights=[1.0, 1.0, 1.0]))

    async def main():
        fb = tc.forward_backward([datum], "cross_entropy")
        step = tc.optim_step(types.AdamParams(learning_rate=1e-3))
        out = await fb
        await step
        sc = await tc.save_weights_and_get_sampling_client()
        prompt = types.ModelInput.from_ints([1, 2, 3])
        responses = await asyncio.gather(*[
            sc.sample(prompt, 1, types.SamplingParams(max_tokens=3, seed=i)) for i in range(8)])
        return out, responses

    out, responses = asyncio.run(main())
    assert "loss:sum" in out.metrics
    assert len(responses) == 8 and all(len(r.sequences[0].tokens) >= 1 for r in responses)


def test_unknown_backend_is_a_clear_error():
    import pytest

    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        cookbook.service_client("nope")


def test_server_capabilities_and_info(tmp_path):
    service = cookbook.service_client(checkpoint_root=tmp_path)
    tc = service.create_lora_training_client(base_model="tiny", rank=4)
    names = [m.model_name for m in service.get_server_capabilities().supported_models]
    assert "tiny" in names
    info = tc.get_info()
    assert info.is_lora and info.lora_rank == 4 and info.model_data.model_name == "tiny"
    assert tc.get_tokenizer().eos_token == "<|endoftext|>"
