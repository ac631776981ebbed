"""The settings of ``cookbook serve`` (each field is a ``key=value`` option)."""

from __future__ import annotations

import chz

from cookbook.errors import ConfigError
from cookbook.http_server import check_listen

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@chz.chz
class ServeConfig:
    base_model: str = "tiny"
    model_path: str | None = None  # an adapter checkpoint of base_model (sampler weights or state); None: the base
    renderer: str | None = None  # default: the recommended renderer for base_model
    model_name: str | None = None  # the model id clients send (default: model_path, else base_model)
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # when set, requests need "Authorization: Bearer <api_key>"
    backend: str = "local"  # local (in-process) or tinker (hosted / any Tinker-compatible server at base_url)
    base_url: str | None = None
    max_tokens: int = 1024  # for requests that give none (lowered to what fits in the context)
    max_n: int = 64  # the largest n (samples per prompt) a request may ask for
    max_rows: int = 1024  # prompts x n of one request (a completions request may send a list of prompts)
    max_pending: int = 256  # requests being answered at once; more get 429
    log_level: str = "info"

    @property
    def served_name(self) -> str:
        return self.model_name or self.model_path or self.base_model

    def check(self) -> ServeConfig:
        """Raise :class:`ConfigError` for settings the server refuses to start with; return self."""
        check_listen(self.host, self.port, has_keys=bool(self.api_key), keys_hint="set api_key=...")
        for name in ("max_tokens", "max_n", "max_rows", "max_pending"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("api_key is empty")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        return self
