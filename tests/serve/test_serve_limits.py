"""Input limits of ``cookbook serve``: nesting, numbers out of range, oversized and chunked bodies,
too many rows: each an OpenAI-shaped 4xx, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

from cookbook.serve.app import MAX_REQUEST_BYTES

ENDPOINTS = ["/v1/chat/completions", "/v1/completions"]
CHAT = {"messages": [{"role": "user", "content": "23+45"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def check_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"] and error["type"], error


def still_serving(http) -> None:
    reply = http.post("/v1/chat/completions", json={**CHAT, "temperature": 0})
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["role"] == "assistant"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_deep_nesting_is_refused_before_decoding(http, endpoint):
    body = b'{"messages": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    check_error(http.post(endpoint, content=body, headers={"Content-Type": "application/json"}), 400,
                "nests 1001 levels deep")
    still_serving(http)


@pytest.mark.parametrize("seed", [2**70, -(2**70)])
def test_seeds_outside_64_bits_are_400(http, seed):
    check_error(http.post("/v1/chat/completions", json={**CHAT, "seed": seed}), 400, "seed")
    check_error(http.post("/v1/completions", json={"prompt": "1+1=", "max_tokens": 2, "seed": seed}), 400, "seed")
    still_serving(http)


def test_chunked_bodies_are_limited_by_the_bytes_read(http):
    def stream():  # no Content-Length: 17 MiB, counted as it arrives
        chunk = b" " * (1 << 20)
        for _ in range(MAX_REQUEST_BYTES // len(chunk) + 1):
            yield chunk
    check_error(http.post("/v1/completions", content=stream(), headers={"Content-Type": "application/json"}), 413,
                "larger than")
    still_serving(http)


def test_rows_of_one_request_are_bounded(http, model):
    prompts = ["1+1="] * (model.max_rows // 2 + 1)
    check_error(http.post("/v1/completions", json={"prompt": prompts, "n": 2, "max_tokens": 1}), 400, "rows")
    check_error(http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 10**12}), 400, "context")
    still_serving(http)
