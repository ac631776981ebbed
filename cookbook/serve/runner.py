"""Running the server: in the foreground (the command) or in a background thread (tests, notebooks)."""

from __future__ import annotations

import uvicorn

from cookbook.http_server import AppThread
from cookbook.serve.app import create_app
from cookbook.serve.model import ServedModel


def serve(model: ServedModel, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM end it gracefully)."""
    uvicorn.run(create_app(model, api_key=api_key), host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=5)


class ServerThread(AppThread):
    """The server in a daemon thread of this process; ``port=0`` picks a free port.

    >>> with ServerThread(model) as server:
    ...     openai.OpenAI(base_url=server.url + "/v1", api_key="none")
    """

    def __init__(self, model: ServedModel, *, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 log_level: str = "warning") -> None:
        super().__init__(create_app(model, api_key=api_key), host=host, port=port, log_level=log_level,
                         name="OpenAI-compatible server")
