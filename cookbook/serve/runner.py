"""Running the server: in the foreground (the command) or in a background thread (tests, notebooks)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from cookbook.serve.app import create_app
from cookbook.serve.model import ServedModel


def serve(model: ServedModel, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM end it gracefully)."""
    uvicorn.run(create_app(model, api_key=api_key), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=5)


class ServerThread:
    """The server in a daemon thread of this process; ``port=0`` picks a free port.

    >>> with ServerThread(model) as server:
    ...     openai.OpenAI(base_url=server.url + "/v1", api_key="none")
    """

    def __init__(self, model: ServedModel, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 log_level: str = "warning") -> None:
        self.host, self.requested_port, self.log_level = host, port, log_level
        self.app = create_app(model, api_key=api_key)
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerThread:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level=self.log_level, access_log=False,
                                                     timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="openai-server",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the OpenAI-compatible server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
