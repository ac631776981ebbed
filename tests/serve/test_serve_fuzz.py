"""A bounded, seeded fuzz of ``cookbook serve`` on 127.0.0.1: over a thousand malformed requests,
no 5xx, memory bounded, and the ``openai`` client still works afterwards."""

from __future__ import annotations

import gc
import random

import httpx
from fuzz import malformed, rss_mb, send

from cookbook.serve.app import MAX_REQUEST_BYTES

REQUESTS = 1200


def test_a_thousand_malformed_requests_get_no_5xx(server, client, checkpoint):
    chat = {"model": checkpoint, "messages": [{"role": "system", "content": "be brief"},
                                              {"role": "user", "content": "23+45"}],
            "max_tokens": 2, "temperature": 0.5, "top_p": 0.9, "n": 1, "stop": ["\n"], "seed": 1,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    completion = {"model": checkpoint, "prompt": "12+3=", "max_tokens": 2, "temperature": 1.0, "n": 2,
                  "stop": "\n", "seed": 2, "echo": False}
    endpoints = {"/v1/chat/completions": chat, "/v1/completions": completion,
                 "/v1/completions?ids": {**completion, "prompt": [[72, 105], [49, 43]]}}
    rng = random.Random(0)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        def fire() -> httpx.Response:
            request = malformed(rng, endpoints, MAX_REQUEST_BYTES, ["nope", "", "x" * 300])
            request.path = request.path.split("?")[0]
            response = send(http, request)
            if response.status_code >= 500:
                errors.append((request.kind, request.path, response.text[:300]))
            return response

        errors: list = []
        for _ in range(20):
            fire()
        gc.collect()
        before = rss_mb()
        statuses: dict[int, int] = {}
        for _ in range(REQUESTS):
            code = fire().status_code
            statuses[code] = statuses.get(code, 0) + 1
        gc.collect()
        grown = rss_mb() - before
    print(f"statuses {sorted(statuses.items())}, RSS {before:.0f} MB -> +{grown:.1f}")
    assert not errors, errors[:5]
    assert sum(n for s, n in statuses.items() if 400 <= s < 500) > REQUESTS // 2, statuses
    assert grown < 50, f"RSS grew by {grown:.0f} MB over {REQUESTS} requests"
    reply = client.chat.completions.create(model=checkpoint, messages=[{"role": "user", "content": "1+1"}],
                                           max_tokens=3, temperature=0)
    assert reply.choices[0].message.role == "assistant"
