"""The static decode path (fixed buffers per batch bucket, LoRA from a slot pool) equals today's decoding.

The sampler uses the static path on CUDA only (``static_decode.DEVICE_TYPES``); these tests switch
it on for the suite's device, where the step runs eagerly on CPU: the same function CUDA captures.
The last test (CUDA only) checks the captured graphs against that eager step.
"""

from __future__ import annotations

import gc
import logging
import time

import numpy as np
import pytest
import torch
from backend_helpers import DEVICE, randomize_adapter
from tinker import types

from cookbook.backend.local import Engine, ServiceClient, static_decode
from cookbook.backend.local.kv_cache import preallocated_cache
from cookbook.backend.local.lora import use_adapters
from cookbook.backend.local.lora_pool import LoraPool
from cookbook.backend.local.static_decode import StaticDecoder, bucket_size

PROMPTS = [[104, 101, 108, 108, 111], [49, 43, 49, 61], [10, 20, 30, 40, 50, 60, 70], [72, 105]]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """An fp32 engine of its own: tests switch its model's decoding path."""
    engine = Engine(str(DEVICE), "float32")
    yield ServiceClient(engine=engine, checkpoint_root=tmp_path_factory.mktemp("checkpoints"))
    engine.close()


@pytest.fixture(autouse=True)
def eager_by_default(service, monkeypatch):
    """Every test starts on the eager path (on CUDA the model comes with a static decoder)."""
    monkeypatch.setattr(service.engine.model("tiny"), "static_decoder", None)


@pytest.fixture(scope="module")
def samplers(service):
    """A rank-8 adapter on everything, the base model, and a rank-4 attention-only adapter."""
    first = service.create_lora_training_client("tiny", rank=8, seed=1)
    randomize_adapter(first, seed=1, scale=0.3)
    second = service.create_lora_training_client("tiny", rank=4, seed=2, train_mlp=False, train_unembed=False)
    randomize_adapter(second, seed=2, scale=0.3)
    return [first.save_weights_and_get_sampling_client(), service.create_sampling_client(base_model="tiny"),
            second.save_weights_and_get_sampling_client()]


def _static(service, monkeypatch, **kwargs) -> StaticDecoder:
    base = service.engine.model("tiny")
    decoder = service.engine.call(lambda: StaticDecoder(base.model, base.decode_step, base.device, base.dtype,
                                                        **kwargs))
    monkeypatch.setattr(base, "static_decoder", decoder)
    return decoder


def _together(service, requests):
    """Sample every (client, prompt, n, params) in one decode batch; tokens and logprobs per sequence."""
    busy = service.engine.submit(lambda: time.sleep(0.2))  # hold the worker so that all requests queue up
    batches = service.engine.stats["sample_batches"]
    futures = [c.sample(types.ModelInput.from_ints(p), n, params) for c, p, n, params in requests]
    busy.result()
    out = [[(list(s.tokens), np.asarray(s.logprobs)) for s in f.result().sequences] for f in futures]
    assert service.engine.stats["sample_batches"] == batches + 1
    return out


def _requests(clients):
    """Greedy and seeded rows with uneven lengths (so finished rows leave the batch), top-k / top-p too."""
    settings = [(0.0, -1, 1.0), (1.0, -1, 1.0), (0.7, 20, 1.0), (1.0, -1, 0.9)]
    out = []
    for i, client in enumerate(clients):
        for j, prompt in enumerate(PROMPTS):
            temperature, top_k, top_p = settings[(i + j) % len(settings)]
            params = types.SamplingParams(max_tokens=4 + 5 * j + i, temperature=temperature, top_k=top_k,
                                          top_p=top_p, seed=10 * i + j, stop=[])
            out.append((client, prompt, 1 + (i + j) % 3, params))
    return out


def _assert_same(got, want, atol: float = 1e-4) -> None:
    for got_seqs, want_seqs in zip(got, want, strict=True):
        for (g_tokens, g_lp), (w_tokens, w_lp) in zip(got_seqs, want_seqs, strict=True):
            assert g_tokens == w_tokens
            np.testing.assert_allclose(g_lp, w_lp, atol=atol)


def _spy_modes(decoder, monkeypatch) -> list[tuple[int, str]]:
    seen = []
    real = decoder.run

    def run(bucket, window, mode):
        seen.append((bucket.size, mode))
        real(bucket, window, mode)
    monkeypatch.setattr(decoder, "run", run)
    return seen


def test_sampler_on_the_static_path_equals_the_eager_path(service, samplers, monkeypatch):
    requests = _requests(samplers)
    eager = _together(service, requests)
    alone = [_together(service, [r]) for r in requests[::3]]

    decoder = _static(service, monkeypatch)
    seen = _spy_modes(decoder, monkeypatch)
    _assert_same(_together(service, requests), eager)  # mixed adapters and base rows in one batch
    assert {size for size, _ in seen} >= {32, 16, 8}  # finished rows moved to smaller buckets
    assert {mode for _, mode in seen} >= {"dense"}
    seen.clear()
    for request, want in zip(requests[::3], alone):  # one adapter, or the base model, alone
        _assert_same(_together(service, [request]), want)
    assert {mode for _, mode in seen} == {"shared", "base"}
    # the adapters change the samples, so the comparisons cover the LoRA path
    assert eager[0] != eager[len(PROMPTS)]


@pytest.mark.slow  # torch.compile compiles the step once per bucket and LoRA mode (~10 s each on CPU)
def test_the_compiled_step_decodes_as_the_eager_path(service, samplers, monkeypatch):
    """compile_step (the bench's torch.compile ablation): the same tokens for mixed adapters and
    base rows in one batch, one adapter alone and the base alone."""
    requests = [(c, PROMPTS[j], 2, types.SamplingParams(max_tokens=6, temperature=t, seed=j, stop=[]))
                for j, c in enumerate(samplers) for t in (0.0, 1.0)]
    eager = _together(service, requests)
    alone = [_together(service, [r]) for r in requests[::2]]
    decoder = _static(service, monkeypatch, compile_step=True)
    seen = _spy_modes(decoder, monkeypatch)
    _assert_same(_together(service, requests), eager)
    for request, want in zip(requests[::2], alone):
        _assert_same(_together(service, [request]), want)
    assert {mode for _, mode in seen} >= {"base", "shared"} and {mode for _, mode in seen} & {"dense", "gather"}


def test_seeded_sampling_reproduces_on_the_static_path(service, samplers, monkeypatch):
    _static(service, monkeypatch)
    client = samplers[0]
    request = (client, PROMPTS[2], 4, types.SamplingParams(max_tokens=16, temperature=1.0, seed=5, stop=[]))
    alone = _together(service, [request])
    again = _together(service, [request])
    others = [(c, p, 3, types.SamplingParams(max_tokens=9, temperature=1.0, seed=None, stop=[]))
              for c in samplers for p in PROMPTS[:2]]
    batched = _together(service, others + [request])[-1]
    _assert_same(again, alone, atol=0)
    _assert_same([batched], alone)
    assert len({tuple(t) for t, _ in alone[0]}) > 1  # the 4 samples are independent draws
    other_seed = _together(service, [(client, PROMPTS[2], 4, request[3].model_copy(update={"seed": 6}))])
    assert [t for t, _ in other_seed[0]] != [t for t, _ in alone[0]]


def _prefill(base, adapters, prompts):
    """Left-padded prefill of ``prompts`` (as the sampler runs it): each layer's keys and values."""
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = torch.tensor(p), 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with use_adapters(adapters):
        out = base.body(input_ids=ids.to(base.device), attention_mask=mask.to(base.device),
                        position_ids=positions.to(base.device), past_key_values=preallocated_cache(width),
                        use_cache=True)
    return [(layer.keys, layer.values) for layer in out.past_key_values.layers]


def _forward_logits(base, adapter, tokens):
    with use_adapters(adapter):
        hidden = base.body(input_ids=torch.tensor([tokens], device=base.device)).last_hidden_state
        return base.lm_head(hidden[0, -1]).float()


def test_static_step_equals_the_model_forward_and_padding_rows_change_nothing(service, samplers):
    base = samplers[0].base
    # three rows (adapter 1, the base model, adapter 2) on prompts of different lengths: bucket 4,
    # whose fourth row is padding
    adapters = [samplers[0].adapter, None, samplers[2].adapter]
    prompts = [PROMPTS[0], PROMPTS[2], PROMPTS[3]]
    feed = torch.tensor([[7, 8, 9, 10, 11, 12], [20, 21, 22, 23, 24, 25], [30, 31, 32, 33, 34, 35]])

    def redo_last_step(decoder, decoding, mode):
        """Run the last step again (it rewrites the same cache positions)."""
        bucket = decoding.bucket
        bucket.lengths[:3] -= 1
        decoder.run(bucket, static_decode._window(decoding.filled, bucket.capacity), mode)
        bucket.lengths[:3] += 1
        return bucket.logits

    @torch.inference_mode()
    def run():
        decoder = StaticDecoder(base.model, base.decode_step, base.device, base.dtype, capture=False)
        decoding = decoder.begin(adapters, 64)
        assert decoding.bucket.size == bucket_size(3) == 4 and decoding.mode == "gather"
        decoding.load_prefill(_prefill(base, adapters, prompts), torch.arange(3, device=base.device),
                              [len(p) for p in prompts])
        worst, modes_gap, scale = 0.0, 0.0, 0.0
        for step in range(feed.shape[1]):
            logits = decoding.step(feed[:, step].to(base.device)).clone()
            for row in range(3):
                expected = _forward_logits(base, adapters[row], prompts[row] + feed[row, : step + 1].tolist())
                worst = max(worst, float((logits[row] - expected).abs().max()))
            dense = redo_last_step(decoder, decoding, "dense")  # the other way to route rows to their slots
            modes_gap = max(modes_gap, float((dense[:3] - logits).abs().max()))
            scale = max(scale, float(logits.abs().max()))

        # the padding row: whatever its token, length, slot and cache hold, the real rows' logits stay the same
        bucket = decoding.bucket
        clean = redo_last_step(decoder, decoding, "gather").clone()
        bucket.tokens[3], bucket.lengths[3], bucket.slots[3] = 123, 9, int(bucket.slots[2])
        for buffer in bucket.keys + bucket.values:
            buffer[3].normal_()
        dirty = redo_last_step(decoder, decoding, "gather")
        return worst / scale, modes_gap / scale, torch.equal(dirty[:3], clean[:3]), not torch.equal(dirty[3], clean[3])

    # relative to the largest logit (~50 with these adapters): fp32 rounding of differently ordered sums
    worst, modes_gap, real_rows_unchanged, padding_row_changed = service.engine.call(run)
    assert worst < 3e-6, worst
    assert modes_gap < 3e-6, modes_gap
    assert real_rows_unchanged and padding_row_changed


def test_a_new_snapshot_loads_into_the_pool_in_place(service, monkeypatch):
    tc = service.create_lora_training_client("tiny", rank=8, seed=3)
    randomize_adapter(tc, seed=3, scale=0.3)
    prompt, params = PROMPTS[1], types.SamplingParams(max_tokens=12, temperature=0.0, stop=[])
    first = tc.save_weights_and_get_sampling_client()
    want_first = _together(service, [(first, prompt, 1, params)])
    randomize_adapter(tc, seed=4, scale=0.3)
    second = tc.save_weights_and_get_sampling_client()
    want_second = _together(service, [(second, prompt, 1, params)])
    assert want_first[0][0][0] != want_second[0][0][0]

    base = service.engine.model("tiny")
    pool = service.engine.call(lambda: LoraPool(base.model, base.device, base.dtype, slots=2, max_slots=2))
    _static(service, monkeypatch, capture=False, pool=pool)  # one slot for adapters
    _assert_same(_together(service, [(first, prompt, 1, params)]), want_first)
    pointers, version = {name: (a.data_ptr(), pool.b[name].data_ptr()) for name, a in pool.a.items()}, pool.version
    del first
    gc.collect()
    _assert_same(_together(service, [(second, prompt, 1, params)]), want_second)
    assert pool._owner(1) is second.adapter
    assert {name: (a.data_ptr(), pool.b[name].data_ptr()) for name, a in pool.a.items()} == pointers
    assert pool.version == version  # nothing reallocated: captured graphs stay valid


def test_more_adapters_than_the_pool_holds_decode_on_the_eager_path(service, samplers, monkeypatch):
    requests = [(c, p, 1, types.SamplingParams(max_tokens=8, temperature=0.0, stop=[]))
                for c in samplers for p in PROMPTS[:2]]
    eager = _together(service, requests)
    base = service.engine.model("tiny")
    pool = service.engine.call(lambda: LoraPool(base.model, base.device, base.dtype, slots=2, max_slots=2))
    decoder = _static(service, monkeypatch, capture=False, pool=pool)
    seen = _spy_modes(decoder, monkeypatch)
    _assert_same(_together(service, requests), eager)  # two adapters: one more than the pool holds
    assert seen == []
    _assert_same(_together(service, requests[:2]), eager[:2])  # one adapter fits
    assert seen and {mode for _, mode in seen} == {"shared"}


def test_a_failed_capture_falls_back_to_eager_steps_with_one_warning(service, samplers, monkeypatch, caplog):
    requests = [(samplers[0], PROMPTS[0], 2, types.SamplingParams(max_tokens=10, temperature=0.0, stop=[]))]
    eager = _together(service, requests)
    decoder = _static(service, monkeypatch, capture=True)

    def fail(*_):
        raise RuntimeError("capture is not supported here")
    monkeypatch.setattr(decoder, "_capture", fail)
    with caplog.at_level(logging.WARNING, logger=static_decode.__name__):
        _assert_same(_together(service, requests), eager)
        _assert_same(_together(service, requests), eager)
    assert len([r for r in caplog.records if "capture" in r.getMessage()]) == 1
    assert decoder.capture is False


def test_the_sampler_uses_the_static_path_only_where_it_pays(service):
    base = service.engine.model("tiny")
    built = StaticDecoder.for_model(base.model, base.decode_step, base.device, base.dtype)
    assert (built is not None) == (base.device.type in static_decode.DEVICE_TYPES)
    assert StaticDecoder.for_model(base.model, None, base.device, base.dtype) is None  # no straight-line step
    assert [bucket_size(n) for n in (1, 2, 3, 5, 8, 33, 64)] == [1, 2, 4, 8, 8, 64, 64]


@pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA graphs need a CUDA device")
def test_captured_graphs_replay_the_eager_step(service, samplers, monkeypatch):
    requests = _requests(samplers)
    _static(service, monkeypatch, capture=False)
    eager = _together(service, requests)
    decoder = _static(service, monkeypatch, capture=True)
    _assert_same(_together(service, requests), eager, atol=1e-5)
    _assert_same(_together(service, requests), eager, atol=1e-5)  # replaying graphs captured by the first call
    assert decoder.capture and any(b.graphs for b in decoder.buckets.values())
