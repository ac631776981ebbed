"""The server's settings."""

from __future__ import annotations

from dataclasses import dataclass

from cookbook.errors import ConfigError
from cookbook.http_server import check_listen


@dataclass(frozen=True)
class ServerConfig:
    """Settings of ``cookbook serve-tinker`` (every field is a ``key=value`` option of the command).

    ``allowed_keys`` empty means: accept any ``X-API-Key`` that starts with ``tml-`` (the SDK
    refuses other keys anyway), which is allowed only while the server listens on a loopback
    address; a server reachable from other machines needs explicit keys.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    allowed_keys: tuple[str, ...] = ()
    max_request_bytes: int = 64 * 2**20  # larger bodies get 413; forward_backward chunks are sized to fit
    long_poll_s: float = 30.0  # how long retrieve_future holds an unfinished request before "try_again"
    future_ttl_s: float = 3600.0  # how long an unfetched result is kept
    session_timeout_s: float = 1800.0  # a session with no request or heartbeat for this long is closed
    fwdbwd_max_chunk_len: int = 1024  # datums per forward_backward request the SDK sends (it splits larger calls)
    max_pending_samples: int = 4096  # sample requests in flight before asample answers 429 (the SDK backs off)
    max_seq_ahead: int = 100_000  # how far past a model's next seq_id a request may arrive
    max_json_bytes: int = 16 * 2**20  # JSON bodies (every endpoint but forward_backward); larger get 413
    # per API key, answered with 429 (or 400 for one request too large) before anything is allocated:
    max_sessions_per_key: int = 256
    max_models_per_key: int = 32  # training models alive at once
    max_samplers_per_key: int = 1024  # sampling sessions alive at once
    max_queued_per_key: int = 4096  # requests accepted and not finished yet
    max_training_gib_per_key: float = 16.0  # LoRA weights + gradients + Adam moments of the key's models
    max_lora_rank: int = 256  # (the backend also refuses ranks above the model's narrowest adapted layer)
    max_samples_per_request: int = 256  # num_samples
    max_sample_tokens: int = 2**20  # num_samples x (prompt + max_tokens) of one request
    device: str | None = None  # the local backend's device/dtype/checkpoint root (None: its defaults)
    dtype: str | None = None
    checkpoint_root: str | None = None
    threads: int = 32  # threads that submit to the backend (model creation and snapshots block one each)
    log_level: str = "info"

    def check(self) -> ServerConfig:
        """Raise :class:`ConfigError` for settings the server refuses to start with; return self."""
        check_listen(self.host, self.port, has_keys=bool(self.allowed_keys),
                     keys_hint="give allowed_keys=... (or allowed_keys_file=...)")
        for name in ("max_request_bytes", "fwdbwd_max_chunk_len", "max_pending_samples", "max_seq_ahead", "threads",
                     "max_json_bytes", "max_sessions_per_key", "max_models_per_key", "max_samplers_per_key",
                     "max_queued_per_key", "max_lora_rank", "max_samples_per_request", "max_sample_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("long_poll_s", "future_ttl_s", "session_timeout_s", "max_training_gib_per_key"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if any(not k for k in self.allowed_keys):
            raise ConfigError("allowed_keys holds an empty key")
        return self
