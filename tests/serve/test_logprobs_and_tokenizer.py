"""Token log-probabilities from ``cookbook serve``'s completions endpoint (``logprobs``, ``echo``: what
lm-evaluation-harness reads for log-likelihoods) equal the backend's own, and the tokenizer routes
(``/tokenizer_info``, ``/tokenize``, ``/detokenize``) use the served model's tokenizer."""

from __future__ import annotations

import httpx
import pytest
from tinker import types


def test_echo_gives_the_prompts_logprobs_as_compute_logprobs_does(client, sampler, renderer, checkpoint):
    prompt = renderer.tokenizer.encode("23+45= 68", add_special_tokens=False)
    reply = client.completions.create(model=checkpoint, prompt=prompt, echo=True, logprobs=2, max_tokens=1,
                                      temperature=0)
    choice = reply.choices[0]
    logprobs = choice.logprobs
    expected = sampler.compute_logprobs(types.ModelInput.from_ints(prompt)).result()
    assert len(logprobs.tokens) == len(prompt) + 1 and logprobs.token_logprobs[0] is None
    assert logprobs.token_logprobs[1:len(prompt)] == pytest.approx(expected[1:], abs=1e-5)
    assert logprobs.top_logprobs[0] is None
    for value, top in zip(logprobs.token_logprobs[1:len(prompt)], logprobs.top_logprobs[1:len(prompt)]):
        assert 1 <= len(top) <= 2 and max(top.values()) >= value - 1e-6  # the top tokens at that position
    assert choice.text.startswith("23+45= 68") and logprobs.text_offset[:2] == [0, 1]
    no_logprobs = client.completions.create(model=checkpoint, prompt=prompt, echo=True, max_tokens=1, temperature=0)
    assert no_logprobs.choices[0].logprobs is None and no_logprobs.choices[0].text == choice.text


def test_logprobs_of_generated_tokens(client, sampler, checkpoint, renderer):
    prompt = renderer.tokenizer.encode("12+30=", add_special_tokens=False)
    reply = client.completions.create(model=checkpoint, prompt=prompt, logprobs=0, max_tokens=4, temperature=1.0,
                                      seed=7)
    direct = sampler.sample(types.ModelInput.from_ints(prompt), 1,
                            types.SamplingParams(max_tokens=4, temperature=1.0, seed=7)).result().sequences[0]
    logprobs = reply.choices[0].logprobs
    kept = len(logprobs.tokens)
    assert kept in (len(direct.tokens), len(direct.tokens) - 1)  # a final end-of-text token is not part of the text
    assert logprobs.token_logprobs == pytest.approx(list(direct.logprobs)[:kept], abs=1e-5)
    assert all(list(top.values()) == [value] for top, value in zip(logprobs.top_logprobs, logprobs.token_logprobs))


def test_chat_logprobs_are_refused(server, checkpoint):
    response = httpx.post(server.url + "/v1/chat/completions", timeout=30,
                          json={"messages": [{"role": "user", "content": "hi"}], "logprobs": True})
    assert response.status_code == 400 and response.json()["error"]["param"] == "logprobs"


def test_tokenizer_routes(server, renderer):
    tokenizer = renderer.tokenizer
    info = httpx.get(server.url + "/tokenizer_info").json()
    assert info["eos_token"] == tokenizer.eos_token and info["model_max_length"] == 2048
    tokens = httpx.post(server.url + "/tokenize", json={"prompt": "23+45", "add_special_tokens": False}).json()
    assert tokens["tokens"] == tokenizer.encode("23+45", add_special_tokens=False) and tokens["count"] == 5
    text = httpx.post(server.url + "/detokenize", json={"tokens": tokens["tokens"]}).json()
    assert text == {"prompt": "23+45"}
    bad = httpx.post(server.url + "/detokenize", json={"tokens": [10**9]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"
