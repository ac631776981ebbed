"""Rows that finish early leave the decode batch, and no result changes because of it."""

from __future__ import annotations

import numpy as np
from backend_helpers import randomize_adapter
from tinker import types

from cookbook.backend.local import sampler

PROMPTS = [[104, 101, 108, 108, 111], [49, 43, 49, 61], [10, 20, 30, 40, 50, 60, 70], [72, 105]]


def _requests(service):
    tc = service.create_lora_training_client("tiny", rank=8, seed=5)
    randomize_adapter(tc, seed=5, scale=0.2)
    clients = [tc.save_weights_and_get_sampling_client(), service.create_sampling_client(base_model="tiny")]
    often = list(range(0, 263, 4))  # a quarter of the vocabulary: the samples of one request end apart
    settings = [(3, 1.0, 1, []), (31, 0.0, 2, []), (7, 1.0, 3, []), (20, 1.0, 4, often), (12, 0.0, 1, ["\n"]),
                (26, 1.0, 2, [])]
    out = []
    for i, (max_tokens, temperature, n, stop) in enumerate(settings):
        params = types.SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=i, stop=stop)
        out.append((clients[i % 2], PROMPTS[i % len(PROMPTS)], n, params))
    return out


def _run(requests):
    futures = [c.sample(types.ModelInput.from_ints(p), n, params) for c, p, n, params in requests]  # one batch
    return [[(list(s.tokens), np.asarray(s.logprobs), s.stop_reason) for s in f.result().sequences] for f in futures]


def test_finished_rows_leave_the_batch_without_changing_results(service, monkeypatch):
    requests = _requests(service)
    # today's decoding (the static one on CUDA routes LoRA slots, not use_adapters)
    monkeypatch.setattr(service.create_lora_training_client("tiny", rank=8).base, "static_decoder", None)
    routings = []
    real_use_adapters = sampler.use_adapters

    def counting(row_adapters):
        routings.append(len(row_adapters))
        return real_use_adapters(row_adapters)

    monkeypatch.setattr(sampler, "use_adapters", counting)
    compacted = _run(requests)
    decode_batch_sizes = routings[1:]  # the first routing is the prefill's
    assert len(decode_batch_sizes) >= 3 and decode_batch_sizes == sorted(decode_batch_sizes, reverse=True)

    monkeypatch.setattr(sampler, "COMPACT_FINISHED_FRACTION", 2.0)  # never reached: rows stay to the end
    routings.clear()
    full = _run(requests)
    assert len(routings) == 2

    for got, want in zip(compacted, full):
        assert [(t, r) for t, _, r in got] == [(t, r) for t, _, r in want]
        for (_, lp_got, _), (_, lp_want, _) in zip(got, want):
            np.testing.assert_allclose(lp_got, lp_want, atol=1e-5)
    assert {len(t) for seqs in full for t, _, _ in seqs} >= {3, 31}
    assert len({len(t) for t, _, _ in full[3]}) > 1  # one request's samples stopped at different steps
