"""Seeded malformed-request generation for the servers' fuzz tests.

A request starts from a valid body of the endpoint and is then broken one way: nested too deep,
a field replaced by a huge / negative / non-finite number or a value of the wrong type, an id
that does not exist, a checkpoint name that is not one, random bytes, a truncated body, a body
over the size limit, or the same body sent chunked (no Content-Length).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

ODD_VALUES = [2**70, -(2**70), 10**30, -1, 0, -(2**63) - 1, 2**64, 1e308, -1e308, float("nan"), float("inf"),
              "", "x" * 5000, "../../etc/passwd", "a\x00b", None, True, [], {}, [[[[1]]]], {"a": {"b": None}},
              [1] * 5000, [-5, 10**12], 3.5, "NaN"]


@dataclass
class FuzzRequest:
    method: str
    path: str
    content: bytes | Callable[[], Iterator[bytes]] | None
    kind: str


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def _dumps(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _mutate_field(rng: random.Random, body: dict) -> dict:
    body = json.loads(json.dumps(body))  # deep copy
    target, keys = body, list(body)
    while True:  # walk into a nested dict now and then, so inner fields get broken too
        key = rng.choice(keys)
        inner = target[key]
        if isinstance(inner, dict) and inner and rng.random() < 0.5:
            target, keys = inner, list(inner)
            continue
        target[key] = rng.choice(ODD_VALUES)
        return body


def malformed(rng: random.Random, endpoints: dict[str, dict], limit_bytes: int, unknown_ids: list[str]
              ) -> FuzzRequest:
    """One broken request to one of ``endpoints`` (path -> a valid JSON body)."""
    path = rng.choice(sorted(endpoints))
    body = endpoints[path]
    kind = rng.choice(["nesting", "field", "field", "field", "two_fields", "unknown_id", "garbage", "truncated",
                       "wrong_top", "chunked", "oversize", "extra_field"])
    if kind == "nesting":
        depth = rng.randint(65, 3000)
        opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        content: bytes | Callable[[], Iterator[bytes]] | None = opener * depth + b"1" * (opener != b"[") + closer * depth
    elif kind in ("field", "two_fields", "extra_field"):
        broken = _mutate_field(rng, body)
        if kind == "two_fields":
            broken = _mutate_field(rng, broken)
        if kind == "extra_field":
            broken["zz_" + str(rng.randint(0, 99))] = rng.choice(ODD_VALUES)
        content = _dumps(broken)
    elif kind == "unknown_id":
        id_keys = [k for k in body if k.endswith("_id") or k == "model_id"] or list(body)
        content = _dumps({**body, rng.choice(id_keys): rng.choice(unknown_ids)})
    elif kind == "garbage":
        content = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
    elif kind == "truncated":
        full = _dumps(body)
        content = full[: rng.randint(0, max(0, len(full) - 1))]
    elif kind == "wrong_top":
        content = _dumps(rng.choice([[body], "text", 42, None, [1, 2]]))
    elif kind == "chunked":
        full = _dumps(_mutate_field(rng, body))
        size = rng.choice([len(full), limit_bytes + 1])

        def chunks(full: bytes = full, size: int = size) -> Iterator[bytes]:
            sent = 0
            while sent < size:
                piece = full[sent:sent + 4096] or b" " * min(65536, size - sent)
                sent += len(piece)
                yield piece
        content = chunks
    else:  # oversize, with a Content-Length
        content = b'{"pad": "' + b"x" * (limit_bytes + 1) + b'"}'
    return FuzzRequest("POST", path, content, kind)


def send(client: httpx.Client, request: FuzzRequest) -> httpx.Response:
    content = request.content() if callable(request.content) else request.content
    return client.request(request.method, request.path, content=content,
                          headers={"Content-Type": "application/json"})
