"""The ``openai`` client against ``cookbook serve`` on 127.0.0.1: models, chat and text completions
(equal to sampling directly), n > 1, stop sequences, errors as OpenAI error bodies with the server
still serving, API keys, concurrent requests reaching the backend together, and the eval runner's
OpenAI path scoring the served checkpoint exactly as the direct sampling-client path does."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import openai
import pytest
from tinker import types

import cookbook
from cookbook.completers import MessageCompleter
from cookbook.serve import ServedModel, ServerThread
from evals.benchmarks import get_benchmark
from evals.responders import OpenAIResponder, SamplingClientResponder
from evals.runner import EvalSettings, evaluate
from recipes.__main__ import main as cookbook_main

QUESTION = [{"role": "user", "content": "23+45"}]


def test_models_lists_the_served_checkpoint(client, server, checkpoint):
    assert [m.id for m in client.models.list().data] == [checkpoint]
    assert client.models.retrieve(checkpoint).id == checkpoint
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_greedy_chat_completion_equals_the_message_completer(client, sampler, renderer, checkpoint):
    direct = MessageCompleter(sampler, renderer, max_tokens=8).complete(QUESTION)
    reply = client.chat.completions.create(model=checkpoint, messages=QUESTION, temperature=0, max_tokens=8)
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == direct.text
    assert choice.finish_reason == ("stop" if direct.parsed else "length")
    assert reply.usage.prompt_tokens == renderer.build_generation_prompt(QUESTION).length
    assert reply.usage.completion_tokens == len(direct.tokens.tokens) and reply.model == checkpoint


def test_text_completion_equals_sampling_the_prompt(client, sampler, renderer, checkpoint):
    prompt = renderer.render_text(QUESTION, add_generation_prompt=True)
    reply = client.completions.create(model=checkpoint, prompt=prompt, temperature=0, max_tokens=6)
    tokens = renderer.tokenizer.encode(prompt, add_special_tokens=True)
    direct = sampler.sample(types.ModelInput.from_ints(tokens), 1,
                            types.SamplingParams(max_tokens=6, temperature=0.0)).result().sequences[0]
    text = renderer.tokenizer.decode([t for t in direct.tokens if t != renderer.tokenizer.eos_token_id],
                                     skip_special_tokens=False)
    assert reply.choices[0].text == text and reply.usage.prompt_tokens == len(tokens)
    batch = client.completions.create(model=checkpoint, prompt=[prompt, "12+1"], temperature=0, max_tokens=3, n=2)
    assert [c.index for c in batch.choices] == [0, 1, 2, 3] and batch.choices[0].text == batch.choices[1].text
    ids = client.completions.create(model=checkpoint, prompt=tokens, temperature=0, max_tokens=6)
    assert ids.choices[0].text == reply.choices[0].text


def test_n_samples(client, checkpoint):
    reply = client.chat.completions.create(model=checkpoint, messages=QUESTION, temperature=1.0, max_tokens=6, n=5,
                                           seed=3)
    assert [c.index for c in reply.choices] == list(range(5))
    assert all(c.finish_reason in ("stop", "length") for c in reply.choices)
    again = client.chat.completions.create(model=checkpoint, messages=QUESTION, temperature=1.0, max_tokens=6, n=5,
                                           seed=3)
    assert [c.message.content for c in again.choices] == [c.message.content for c in reply.choices]


def test_stop_sequences_end_the_text_and_are_not_returned(client, checkpoint, renderer):
    free = client.chat.completions.create(model=checkpoint, messages=QUESTION, temperature=0, max_tokens=12)
    text = free.choices[0].message.content
    assert text, free
    stop = text[-1]  # cut the greedy answer at its last character's first occurrence
    stopped = client.chat.completions.create(model=checkpoint, messages=QUESTION, temperature=0, max_tokens=12,
                                             stop=[stop, "never-appears"])
    assert stopped.choices[0].message.content == text[: text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    prompt = renderer.render_text(QUESTION, add_generation_prompt=True)
    raw = client.completions.create(model=checkpoint, prompt=prompt, temperature=0, max_tokens=12).choices[0].text
    cut = client.completions.create(model=checkpoint, prompt=prompt, temperature=0, max_tokens=12, stop=raw[1])
    assert cut.choices[0].text == raw[: raw.index(raw[1])] and cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("body,status,param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (b'{"messages": [{"role": "wizard", "content": "hi"}]}', 400, "messages"),
    (b'{"messages": [{"content": "no role"}]}', 400, "messages"),
    (b'{"messages": []}', 400, "messages"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}', 400, "max_tokens"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 7}', 400, "temperature"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "n": 1000}', 400, "n"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "stream": true}', 400, "stream"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "stop": [""]}', 400, "stop"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000}', 400, None),
    (b'{"model": "gpt-17", "messages": [{"role": "user", "content": "hi"}]}', 404, "model"),
])
def test_bad_chat_requests_get_openai_error_bodies(server, client, checkpoint, body, status, param):
    response = httpx.post(server.url + "/v1/chat/completions", content=body, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    assert "Traceback" not in response.text and error["message"]
    ok = client.chat.completions.create(model=checkpoint, messages=QUESTION, temperature=0, max_tokens=2)
    assert ok.choices  # the server keeps serving


def test_bad_completion_requests_and_unknown_routes(server):
    for body in (b'{"prompt": ""}', b'{"prompt": [999999]}', b'{"prompt": "x", "logprobs": 99}', b'{"prompt": 5}'):
        response = httpx.post(server.url + "/v1/completions", content=body, timeout=30)
        assert response.status_code == 400 and response.json()["error"]["message"], body
    assert httpx.get(server.url + "/v1/nothing").json()["error"]["message"].startswith("Not Found")
    assert httpx.delete(server.url + "/v1/models").status_code == 405


def test_the_openai_client_raises_typed_errors(client, checkpoint):
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=checkpoint, messages=QUESTION, max_tokens=5000)
    assert too_long.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-17", messages=QUESTION)
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="unsupported role"):
        client.chat.completions.create(model=checkpoint, messages=[{"role": "wizard", "content": "x"}])


def test_api_key(model):
    with ServerThread(model, api_key="sekrit") as server:
        wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="guess", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        right = openai.OpenAI(base_url=server.url + "/v1", api_key="sekrit", max_retries=0)
        assert right.models.list().data[0].id == model.name
        assert httpx.get(server.url + "/health").status_code == 200


class GatheringSampler:
    """Answers only once ``expected`` requests have been submitted: a server that handled requests one
    at a time would never get there (the test would time out)."""

    def __init__(self, expected: int, tokens: list[int]):
        self.expected, self.tokens, self.submitted = expected, tokens, 0
        self.all_in = threading.Event()

    def sample(self, prompt, num_samples, sampling_params):
        self.submitted += 1
        if self.submitted == self.expected:
            self.all_in.set()
        sampler = self

        class Future:
            async def result_async(self, timeout=None):
                await asyncio.get_running_loop().run_in_executor(None, sampler.all_in.wait, 30)
                assert sampler.all_in.is_set(), "requests did not reach the backend together"
                seq = types.SampledSequence(stop_reason="stop", sequence_id="0",
                                            tokens_np=np.array(sampler.tokens, np.int32))
                return types.SampleResponse(sequences=[seq] * num_samples)
        return Future()


def test_concurrent_requests_reach_the_backend_together(renderer):
    tokens = renderer.tokenizer.encode("7", add_special_tokens=False) + renderer.get_stop_sequences()
    gathering = GatheringSampler(6, tokens)
    with ServerThread(ServedModel(gathering, renderer, name="m")) as server:
        async def ask_all():
            client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60)
            return await asyncio.gather(*(client.chat.completions.create(model="m", messages=QUESTION, max_tokens=4)
                                          for _ in range(6)))
        replies = asyncio.run(ask_all())
    assert [r.choices[0].message.content for r in replies] == ["7"] * 6


def test_concurrent_requests_decode_in_few_batches(server, checkpoint):
    engine = cookbook.service_client("local").engine
    before = engine.stats["sample_batches"]

    async def ask_all():
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=60)
        return await asyncio.gather(*(client.chat.completions.create(
            model=checkpoint, messages=[{"role": "user", "content": f"{i}+{i}"}], max_tokens=8, temperature=0)
            for i in range(16)))
    assert len(asyncio.run(ask_all())) == 16
    assert engine.stats["sample_batches"] - before < 16


def test_eval_runner_openai_path_scores_like_the_direct_path(server, sampler, renderer, checkpoint, tmp_path):
    benchmark = get_benchmark("addition")
    settings = EvalSettings(limit=100, concurrency=32)
    direct = evaluate(benchmark, SamplingClientResponder(sampler, renderer), settings, progress=False)
    served = evaluate(benchmark, OpenAIResponder.connect(server.url + "/v1", checkpoint, "unused"), settings,
                      progress=False)
    assert served.summary["accuracy"] == direct.summary["accuracy"]
    assert served.summary["truncation_rate"] == direct.summary["truncation_rate"]
    assert [r["response"] for r in served.rows] == [r["response"] for r in direct.rows]
    assert [r["completion_tokens"] for r in served.rows] == [r["completion_tokens"] for r in direct.rows]
    # and through the command line
    assert cookbook_main(["eval", "benchmark=addition", "limit=100", "backend=openai", f"base_url={server.url}/v1",
                          f"model={checkpoint}", f"output_dir={tmp_path / 'cli'}", "progress=False"]) == 0


def test_serve_command_line_errors(capsys):
    assert cookbook_main(["serve", "--help"]) == 0
    assert "model_path" in capsys.readouterr().out
    assert cookbook_main(["serve", "host=0.0.0.0"]) == 2
    assert "api_key" in capsys.readouterr().err
    assert cookbook_main(["serve", "renderer=nope", "port=0"]) == 2
    assert capsys.readouterr().err.startswith("error: renderer")
