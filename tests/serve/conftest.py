"""The OpenAI-compatible server on 127.0.0.1 (in this process, on a free port) over the final sampler
checkpoint of a short quickstart run."""

from __future__ import annotations

import pytest
from trained_tiny import checkpoints, one_compute_thread, quickstart_run

import cookbook
from cookbook.primitives import ready
from cookbook.serve import ServedModel, ServerThread
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer


@pytest.fixture(scope="module", autouse=True)
def _one_compute_thread():
    with one_compute_thread():
        yield


@pytest.fixture(scope="module")
def checkpoint() -> str:
    with one_compute_thread():
        run = quickstart_run()
    return next(c["sampler_path"] for c in checkpoints(run) if c["final"])


@pytest.fixture(scope="module")
def sampler(checkpoint):
    return ready(cookbook.service_client("local").create_sampling_client(model_path=checkpoint))


@pytest.fixture(scope="module")
def renderer():
    return get_renderer("tiny", get_tokenizer("tiny"))


@pytest.fixture(scope="module")
def model(sampler, renderer, checkpoint) -> ServedModel:
    return ServedModel(sampler, renderer, name=checkpoint, context_length=2048, default_max_tokens=16)


@pytest.fixture(scope="module")
def server(model):
    with ServerThread(model) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
