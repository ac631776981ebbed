"""Running the server: in the foreground (the command) or in a background thread (tests, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from .app import create_app
from .config import ServerConfig


def serve(config: ServerConfig, service: Any = None) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM end it gracefully)."""
    uvicorn.run(create_app(config, service), host=config.host, port=config.port, log_level=config.log_level,
                access_log=config.log_level == "debug", timeout_graceful_shutdown=5)


class ServerThread:
    """The server in a daemon thread of this process; ``port=0`` picks a free port.

    >>> with ServerThread(ServerConfig(port=0)) as server:
    ...     tinker.ServiceClient(base_url=server.url, api_key="tml-local")
    """

    def __init__(self, config: ServerConfig | None = None, service: Any = None) -> None:
        self.config = config or ServerConfig(port=0)
        self._app = create_app(self.config, service)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}"

    @property
    def app(self) -> Any:
        return self._app

    def start(self, timeout: float = 30.0) -> ServerThread:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY only then
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self._app, log_level=self.config.log_level,
                                                     access_log=self.config.log_level == "debug",
                                                     timeout_graceful_shutdown=1))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="tinker-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Tinker-compatible server did not start")
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
