"""Completers over any sampling client: tokens and logprobs; messages through a renderer."""

from __future__ import annotations

import asyncio

from fakes import FakeSampler
from tinker import types

import cookbook
from cookbook.completers import MessageCompleter, TokenCompleter
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer


def test_token_completer_submits_everything_before_waiting():
    events = []
    sampler = FakeSampler(lambda prompt: [7, 8, 9], events)
    completer = TokenCompleter(sampler, max_tokens=3, temperature=0.5, stop=["\n"], seed=1)
    prompts = [types.ModelInput.from_ints([1, 2]), types.ModelInput.from_ints([3])]
    out = completer.complete_many(prompts, num_samples=2)
    assert events == ["submit", "submit", "wait", "wait"]
    assert [len(samples) for samples in out] == [2, 2]
    assert out[0][0].tokens == [7, 8, 9] and out[0][0].logprobs == [-0.5] * 3 and out[0][0].stop_reason == "stop"
    params = sampler.params[0]
    assert (params.max_tokens, params.temperature, params.stop, params.seed) == (3, 0.5, ["\n"], 1)
    assert params.top_p == types.SamplingParams(max_tokens=1).top_p  # unset settings keep the SDK defaults
    assert asyncio.run(completer.complete_async(prompts[0]))[0].tokens == [7, 8, 9]


def test_message_completer_renders_samples_and_parses():
    tokenizer = get_tokenizer("tiny")
    renderer = get_renderer("tiny", tokenizer)
    sampler = FakeSampler(lambda prompt: tokenizer.encode("42<|im_end|>", add_special_tokens=False))
    completer = MessageCompleter(sampler, renderer, max_tokens=8)
    done = completer.complete([{"role": "user", "content": "40+2"}])
    assert done.parsed and done.text == "42" and done.message["role"] == "assistant"
    assert sampler.params[0].temperature == 0.0 and sampler.params[0].stop == renderer.get_stop_sequences()


def test_message_completer_over_the_local_backend():
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    sampler = cookbook.service_client().create_sampling_client(base_model="tiny")
    completions = MessageCompleter(sampler, renderer, max_tokens=4).complete_many(
        [[{"role": "user", "content": "1+1"}], [{"role": "user", "content": "2+2"}]])
    assert len(completions) == 2
    for c in completions:
        assert isinstance(c.text, str) and len(c.tokens.tokens) <= 4 and len(c.tokens.logprobs) == len(c.tokens.tokens)
