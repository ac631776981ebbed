"""Acceptance 3: sampler logprobs, KV-cache decoding, seeds, stop conditions; request coalescing."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from backend_helpers import DEVICE, LOW_PRECISION, assert_close, make_datum, randomize_adapter
from tinker import types


@pytest.fixture(scope="module")
def trained(service):
    tc = service.create_lora_training_client("tiny", rank=8, seed=11)
    randomize_adapter(tc, seed=11, scale=0.2)
    return tc, tc.save_weights_and_get_sampling_client()


PROMPTS = [[104, 101, 108, 108, 111], [49, 43, 49, 61], [10, 20, 30, 40, 50, 60, 70]]


def _forward_logprobs(tc, prompt: list[int], tokens: list[int]) -> np.ndarray:
    out = tc.forward([make_datum(prompt + tokens)], "cross_entropy").result()
    return out.loss_fn_outputs[0]["logprobs"].to_numpy()[len(prompt) - 1:]


def test_sampled_logprobs_equal_forward_logprobs_at_temperature_one(trained, service_fp32):
    tc, sc = trained
    exact = tc
    if LOW_PRECISION:  # the trainer in fp32 gives the exact values; the low-precision trainer is the peer
        exact = service_fp32.create_lora_training_client("tiny", rank=8, seed=11)
        exact.adapter.load_state_dict(tc.adapter.state_dict())
    futures = [sc.sample(types.ModelInput.from_ints(p), 4, types.SamplingParams(max_tokens=24, seed=i, stop=[]))
               for i, p in enumerate(PROMPTS)]  # coalesced into one left-padded batch
    sampled, expected, peer = [], [], []  # over all 12 sequences: one sequence is too few tokens for a norm
    for prompt, fut in zip(PROMPTS, futures):
        for seq in fut.result().sequences:
            assert seq.stop_reason == "length" and len(seq.tokens) == 24
            sampled += seq.logprobs
            expected += list(_forward_logprobs(exact, prompt, seq.tokens))
            if LOW_PRECISION:
                peer += list(_forward_logprobs(tc, prompt, seq.tokens))
    assert_close(sampled, expected, atol=1e-4, peer=peer or None)


def _greedy_by_recomputation(tc, prompt: list[int], n: int) -> list[int]:
    """Greedy decoding that recomputes the whole sequence with the trainer's forward each step."""
    tokens = list(prompt)
    vocab = tc.base.vocab_size
    for _ in range(n):
        # score every candidate next token at once via K targets at the last position
        datum = types.Datum(
            model_input=types.ModelInput.from_ints(tokens),
            loss_fn_inputs=dict(target_tokens=np.tile(np.arange(vocab), (len(tokens), 1)).astype(np.int64),
                                weights=np.zeros((len(tokens), vocab), dtype=np.float32)))
        lp = tc.forward([datum], "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_numpy()
        tokens.append(int(lp[-1].argmax()))
    return tokens[len(prompt):]


def test_greedy_with_kv_cache_equals_full_recomputation(trained):
    tc, sc = trained
    for prompt in PROMPTS:
        res = sc.sample(types.ModelInput.from_ints(prompt), 2,
                        types.SamplingParams(max_tokens=16, temperature=0.0, stop=[])).result()
        expected = _greedy_by_recomputation(tc, prompt, 16)
        assert [s.tokens for s in res.sequences] == [expected, expected]


def test_same_seed_same_samples_different_seed_different_samples(trained):
    _, sc = trained
    prompt = types.ModelInput.from_ints(PROMPTS[0])

    def draw(seed):
        res = sc.sample(prompt, 4, types.SamplingParams(max_tokens=20, seed=seed, stop=[])).result()
        return [s.tokens for s in res.sequences]

    a, b, c = draw(7), draw(7), draw(8)
    assert a == b
    assert a != c
    assert len({tuple(t) for t in a}) > 1  # the num_samples rows are independent draws


def test_stop_strings_stop_token_ids_and_max_tokens(trained, tokenizer):
    _, sc = trained
    prompt = types.ModelInput.from_ints(PROMPTS[1])
    free = sc.sample(prompt, 1, types.SamplingParams(max_tokens=30, temperature=0.0, stop=[])).result().sequences[0]
    assert free.stop_reason == "length" and len(free.tokens) == 30

    stop_id = free.tokens[5]
    first = free.tokens.index(stop_id)
    by_id = sc.sample(prompt, 1, types.SamplingParams(max_tokens=30, temperature=0.0, stop=[stop_id])).result()
    assert by_id.sequences[0].stop_reason == "stop"
    assert by_id.sequences[0].tokens == free.tokens[: first + 1]

    text = tokenizer.decode(free.tokens[3:5])
    by_str = sc.sample(prompt, 1, types.SamplingParams(max_tokens=30, temperature=0.0, stop=[text])).result()
    seq = by_str.sequences[0]
    assert seq.stop_reason == "stop"
    assert tokenizer.decode(seq.tokens).endswith(text) or text in tokenizer.decode(seq.tokens)
    assert text not in tokenizer.decode(seq.tokens[:-1])

    short = sc.sample(prompt, 1, types.SamplingParams(max_tokens=3, temperature=0.0, stop=[])).result()
    assert short.sequences[0].stop_reason == "length" and short.sequences[0].tokens == free.tokens[:3]


def test_eos_stops_by_default(service, tokenizer):
    tc = service.create_lora_training_client("tiny", rank=4, seed=1)
    eos = tokenizer.eos_token_id
    sc = tc.save_weights_and_get_sampling_client()
    prompt = types.ModelInput.from_ints([1, 2, 3])
    greedy = sc.sample(prompt, 1, types.SamplingParams(max_tokens=40, temperature=0.0, stop=[])).result()
    assert eos not in greedy.sequences[0].tokens or greedy.sequences[0].stop_reason == "length"
    # train the adapter to emit EOS after the prompt, then the default stop (None = EOS) applies
    datum = make_datum([1, 2, 3, eos], weights=[0.0, 0.0, 1.0])
    for _ in range(20):
        tc.forward_backward([datum], "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=1e-2))
    sc = tc.save_weights_and_get_sampling_client()
    res = sc.sample(prompt, 1, types.SamplingParams(max_tokens=10, temperature=0.0)).result().sequences[0]
    assert res.tokens == [eos] and res.stop_reason == "stop"


def test_top_k_one_is_greedy_and_top_p_restricts_support(trained):
    _, sc = trained
    prompt = types.ModelInput.from_ints(PROMPTS[2])
    greedy = sc.sample(prompt, 1, types.SamplingParams(max_tokens=12, temperature=0.0, stop=[])).result()
    top1 = sc.sample(prompt, 3, types.SamplingParams(max_tokens=12, top_k=1, seed=3, stop=[])).result()
    assert all(s.tokens == greedy.sequences[0].tokens for s in top1.sequences)
    tiny_p = sc.sample(prompt, 3, types.SamplingParams(max_tokens=12, top_p=1e-6, seed=3, stop=[])).result()
    assert all(s.tokens == greedy.sequences[0].tokens for s in tiny_p.sequences)


def test_prompt_logprobs_and_compute_logprobs_match_forward(trained):
    tc, sc = trained
    prompt = PROMPTS[2]
    forward = tc.forward([make_datum(prompt)], "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_numpy()
    res = sc.sample(types.ModelInput.from_ints(prompt), 1, types.SamplingParams(max_tokens=1),
                    include_prompt_logprobs=True, topk_prompt_logprobs=3).result()
    assert res.prompt_logprobs[0] is None
    # on CUDA the prefill and forward kernels may sum in different orders (H200, fp32: 9e-7 relative)
    rtol, slack = (1e-7, 1e-6) if DEVICE.type == "cpu" else (5e-6, 1e-4)
    np.testing.assert_allclose(res.prompt_logprobs[1:], forward, atol=1e-5, rtol=rtol)
    topk = res.topk_prompt_logprobs
    assert topk[0] is None and all(len(row) == 3 for row in topk[1:])
    assert all(row[0][1] >= row[1][1] >= row[2][1] for row in topk[1:])
    assert all(row[0][1] >= lp - slack for row, lp in zip(topk[1:], forward))
    computed = sc.compute_logprobs(types.ModelInput.from_ints(prompt)).result()
    assert computed[0] is None
    np.testing.assert_allclose(computed[1:], forward, atol=1e-5, rtol=rtol)


def test_concurrent_requests_from_threads_are_served_together(trained):
    _, sc = trained
    engine = sc.service.engine
    prompt = types.ModelInput.from_ints(PROMPTS[0])
    params = types.SamplingParams(max_tokens=8, temperature=0.0, stop=[])
    alone = sc.sample(prompt, 1, params).result().sequences[0].tokens
    batches_before = engine.stats["sample_batches"]
    results = [None] * 16
    barrier = threading.Barrier(16)

    def worker(i):
        barrier.wait()
        results[i] = sc.sample(prompt, 1, params).result()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.sequences[0].tokens == alone for r in results)
    assert engine.stats["sample_batches"] - batches_before < 16


def test_base_model_sampler_ignores_adapters(service, trained):
    tc, sc = trained
    base = service.create_sampling_client(base_model="tiny")
    prompt = types.ModelInput.from_ints(PROMPTS[0])
    params = types.SamplingParams(max_tokens=10, temperature=0.0, stop=[])
    fresh = service.create_lora_training_client("tiny", rank=4).save_weights_and_get_sampling_client()
    f_base, f_fresh, f_trained = (c.sample(prompt, 1, params) for c in (base, fresh, sc))  # one mixed batch
    assert f_base.result().sequences[0].tokens == f_fresh.result().sequences[0].tokens  # B = 0: same model
    assert f_trained.result().sequences[0].tokens != f_base.result().sequences[0].tokens


def test_kv_cache_growing_past_its_preallocation_gives_the_same_tokens(trained, monkeypatch):
    from cookbook.backend.local import sampler

    _, sc = trained
    monkeypatch.setattr(sc.base, "static_decoder", None)  # the eager decode's growing cache (CUDA decodes statically)
    prompt = types.ModelInput.from_ints(PROMPTS[0])
    params = types.SamplingParams(max_tokens=40, temperature=0.0, stop=[])
    expected = sc.sample(prompt, 2, params).result()
    monkeypatch.setattr(sampler, "KV_PREALLOCATE_MAX", 3)  # forces two doublings of the buffers
    grown = sc.sample(prompt, 2, params).result()
    assert [s.tokens for s in grown.sequences] == [s.tokens for s in expected.sequences]
    np.testing.assert_allclose(grown.sequences[0].logprobs, expected.sequences[0].logprobs, atol=1e-5)
