"""An ASGI app served by uvicorn in a background thread (tests, notebooks): the servers' shared runner.

Both servers (``cookbook.serve``, the OpenAI-compatible one, and ``cookbook.backend.tinker_server``)
wrap this. The socket is bound here with ``IPPROTO_TCP`` so that asyncio sets ``TCP_NODELAY`` on
connections; without it every request paid ~48 ms of delayed-ACK latency in measurements.

:func:`check_listen` is the servers' shared refusal to listen off loopback without keys, and
:func:`parse_json_object` their shared JSON body parser, which refuses bodies nested deeper than
``MAX_JSON_DEPTH`` before decoding them (the decoder recurses once per level).

A leaf: imports uvicorn, numpy and ``cookbook.errors`` only.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from typing import Any

import numpy as np
import uvicorn

from cookbook.errors import ConfigError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, port: int, *, has_keys: bool, keys_hint: str) -> None:
    """Refuse a port out of range, and a host other machines can reach when no API keys are set."""
    if not has_keys and not is_loopback(host):
        raise ConfigError(f"host={host} is reachable from other machines: {keys_hint} or listen on 127.0.0.1")
    if not 0 <= port < 65536:
        raise ConfigError(f"port must be in 0..65535, got {port}")


MAX_JSON_DEPTH = 64  # the SDK's and the OpenAI API's deepest bodies nest well under 16 levels
_CHUNK = 1 << 20


class JsonBodyError(ValueError):
    """A request body that is not a JSON object within the limits (the servers answer 400)."""


def json_depth(raw: bytes) -> int:
    """How deep brackets nest in a JSON text outside its strings: linear time, bounded memory,
    nothing decoded (escaped backslashes and quotes are dropped first, so quotes pair up)."""
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    depth = deepest = inside = 0
    for start in range(0, len(text), _CHUNK):
        chars = np.frombuffer(text, dtype=np.uint8, count=min(_CHUNK, len(text) - start), offset=start)
        in_string = ((np.cumsum(chars == ord('"'), dtype=np.int32) + inside) & 1).astype(bool)
        opens = (chars == ord("[")) | (chars == ord("{"))
        step = opens.astype(np.int32) - ((chars == ord("]")) | (chars == ord("}")))
        step[in_string] = 0
        levels = np.cumsum(step, dtype=np.int32) + depth
        deepest, depth, inside = max(deepest, int(levels.max())), int(levels[-1]), int(in_string[-1])
    return deepest


def parse_json_object(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A request body as a JSON object; :class:`JsonBodyError` for anything else, before decoding
    when it nests deeper than ``max_depth``. An empty body is ``{}``."""
    if not raw.strip():
        return {}
    depth = json_depth(raw)
    if depth > max_depth:
        raise JsonBodyError(f"the JSON body nests {depth} levels deep; at most {max_depth} are accepted")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise JsonBodyError(f"malformed JSON body: {exc}") from None
    if not isinstance(value, dict):
        raise JsonBodyError(f"the JSON body must be an object, got {type(value).__name__}")
    return value


class AppThread:
    """``app`` on ``host:port`` in a daemon thread of this process; ``port=0`` picks a free port.

    >>> with AppThread(app, host="127.0.0.1", port=0) as server:
    ...     httpx.get(server.url + "/health")
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 access_log: bool = False, name: str = "http-server") -> None:
        self.app, self.host, self.requested_port = app, host, port
        self.log_level, self.access_log, self.name = log_level, access_log, name
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> AppThread:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level=self.log_level, access_log=self.access_log,
                                                     timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name=self.name,
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> AppThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
