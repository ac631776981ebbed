"""``cookbook serve-tinker``: parse ``key=value`` options (``--key value`` works too) and serve."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from cookbook.errors import ConfigError

from .config import ServerConfig
from .runner import serve

_DEFAULTS = ServerConfig()
_EPILOG = """\
Options are key=value (or --key value). Clients connect with the official SDK:
  tinker.ServiceClient(base_url="http://HOST:PORT", api_key="tml-...")
or, in this project, backend=tinker base_url=http://HOST:PORT (TINKER_API_KEY=tml-...).
Without allowed_keys the server accepts any key starting with "tml-" and listens on loopback only.
"""


LIMITS = {  # ServerConfig fields set on the command line as they are: input limits and per-key quotas
    "max_json_bytes": "largest JSON body in bytes (every endpoint but forward_backward)",
    "max_sessions_per_key": "open sessions per API key",
    "max_models_per_key": "training models alive at once per API key",
    "max_samplers_per_key": "sampling sessions alive at once per API key",
    "max_queued_per_key": "requests accepted and not finished per API key",
    "max_training_gib_per_key": "GiB of LoRA weights + gradients + Adam moments per API key",
    "max_lora_rank": "largest LoRA rank create_model accepts",
    "max_samples_per_request": "largest num_samples of one sample request",
    "max_sample_tokens": "largest num_samples x (prompt + max_tokens) of one sample request",
    "max_pending_samples": "sample requests in flight (all keys) before 429",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, as every other command
        raise ConfigError(f"{message} (cookbook serve-tinker --help lists the options)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cookbook serve-tinker", epilog=_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Serve the local reference backend over the Tinker HTTP API.")
    d = _DEFAULTS
    p.add_argument("--host", default=d.host, help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=d.port, help="port (default %(default)s; 0 = any free port)")
    p.add_argument("--allowed_keys", default="", help="comma-separated API keys to accept (default: any tml- key, "
                                                      "loopback only)")
    p.add_argument("--allowed_keys_file", default=None, help="file with one accepted API key per line")
    p.add_argument("--max_request_mb", type=float, default=d.max_request_bytes / 2**20,
                   help="largest request body in MiB (default %(default)s)")
    p.add_argument("--long_poll_s", type=float, default=d.long_poll_s,
                   help="how long retrieve_future waits for a result (default %(default)s)")
    p.add_argument("--session_timeout_s", type=float, default=d.session_timeout_s,
                   help="close sessions idle this long (default %(default)s)")
    p.add_argument("--fwdbwd_max_chunk_len", type=int, default=d.fwdbwd_max_chunk_len,
                   help="datums per forward_backward request sent by the SDK (default %(default)s)")
    p.add_argument("--device", default=None, help="backend device: cuda, cpu, ... (default: CUDA when available)")
    p.add_argument("--dtype", default=None, help="backend dtype: bfloat16 / float32 (default: bf16 on CUDA)")
    p.add_argument("--checkpoint_root", default=None,
                   help="where checkpoints are written (default: $COOKBOOK_CHECKPOINT_ROOT or "
                        "~/.cache/cookbook/checkpoints)")
    p.add_argument("--threads", type=int, default=d.threads, help="backend submission threads (default %(default)s)")
    p.add_argument("--log_level", default=d.log_level, choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level; debug also logs every request (default %(default)s)")
    limits = p.add_argument_group("input limits and per-key quotas (answered with 4xx / 429 before any allocation)")
    for name, text in LIMITS.items():
        default = getattr(d, name)
        limits.add_argument(f"--{name}", type=type(default), default=default, help=f"{text} (default %(default)s)")
    return p


def _normalise(argv: list[str]) -> list[str]:
    """``key=value`` -> ``--key=value``; ``--some-key`` -> ``--some_key``."""
    out = []
    for arg in argv:
        if not arg.startswith("-") and "=" in arg:
            arg = "--" + arg
        if arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            arg = "--" + key.replace("-", "_") + sep + value
        out.append(arg)
    return out


def parse_args(argv: list[str]) -> ServerConfig:
    """The :class:`ServerConfig` of the command line (raises :class:`ConfigError` for a bad combination)."""
    args = build_parser().parse_args(_normalise(argv))
    keys = [k.strip() for k in args.allowed_keys.split(",") if k.strip()]
    if args.allowed_keys_file:
        path = Path(args.allowed_keys_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"allowed_keys_file {path} does not exist")
        keys += [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return ServerConfig(
        host=args.host, port=args.port, allowed_keys=tuple(keys), max_request_bytes=int(args.max_request_mb * 2**20),
        long_poll_s=args.long_poll_s, session_timeout_s=args.session_timeout_s,
        fwdbwd_max_chunk_len=args.fwdbwd_max_chunk_len, device=args.device, dtype=args.dtype,
        checkpoint_root=args.checkpoint_root, threads=args.threads, log_level=args.log_level,
        **{name: getattr(args, name) for name in LIMITS},
    ).check()


def main(argv: list[str] | None = None) -> int:
    """Run the server until interrupted; 0 on a clean exit, 2 on bad options."""
    try:
        config = parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # --help, or an option argparse rejected (it printed why)
        return exc.code if isinstance(exc.code, int) else 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = f"http://{'[' + config.host + ']' if ':' in config.host else config.host}:{config.port}"
    keys = f"{len(config.allowed_keys)} allowed key(s)" if config.allowed_keys else "any tml- key (loopback only)"
    print(f"serving the local backend for the Tinker SDK at {where} ({keys}); connect with "
          f"tinker.ServiceClient(base_url={where!r}, api_key=...)", file=sys.stderr)
    serve(config)
    return 0
