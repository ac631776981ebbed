"""Running the server: in the foreground (the command) or in a background thread (tests, notebooks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import uvicorn

from cookbook.http_server import AppThread

from .app import create_app
from .config import ServerConfig

if TYPE_CHECKING:
    from cookbook.backend import LocalServiceClient


def serve(config: ServerConfig, service: LocalServiceClient | None = None) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM end it gracefully)."""
    uvicorn.run(create_app(config, service), host=config.host, port=config.port, log_level=config.log_level,
                access_log=config.log_level == "debug", timeout_graceful_shutdown=5)


class ServerThread(AppThread):
    """The server in a daemon thread of this process; ``port=0`` picks a free port.

    >>> with ServerThread(ServerConfig(port=0)) as server:
    ...     tinker.ServiceClient(base_url=server.url, api_key="tml-local")
    """

    def __init__(self, config: ServerConfig | None = None, service: LocalServiceClient | None = None) -> None:
        self.config = config or ServerConfig(port=0)
        super().__init__(create_app(self.config, service), host=self.config.host, port=self.config.port,
                         log_level=self.config.log_level, access_log=self.config.log_level == "debug",
                         name="Tinker-compatible server")
