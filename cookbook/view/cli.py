"""``cookbook view DIR [DIR ...] [port=8080] [host=127.0.0.1] [poll=2] [--export report.html]``.

Serves the page until interrupted (loopback only: the viewer has no keys, so the servers' shared
listen check refuses any other host), or with ``--export FILE`` writes the one-file report and exits.

May import ``cookbook.view.*``, ``cookbook.http_server`` and ``cookbook.errors``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cookbook.errors import ConfigError

USAGE = """usage: cookbook view DIR [DIR ...] [port=8080] [host=127.0.0.1] [poll=2] [--export FILE.html]

A local web page of the run, eval and sweep directories under each DIR (found up to 6 levels down,
again while it is open, so runs that start later appear): training curves that update while runs
go, configs and checkpoints, RL episodes, SFT/DPO datums with their trained tokens, eval samples
and sweep tables. Read-only; nothing leaves the machine (plotly's JavaScript comes from the
installed package).

  port=N        port to listen on (default 8080; 0 picks a free one)
  host=H        loopback address to listen on (default 127.0.0.1; other hosts are refused)
  poll=S        seconds between the page's refreshes (default 2)
  --export F    write one self-contained HTML file of everything instead of serving
"""


@dataclass
class ViewArgs:
    dirs: list[str] = field(default_factory=list)
    port: int = 8080
    host: str = "127.0.0.1"
    poll: float = 2.0
    export: str | None = None


def parse(argv: list[str]) -> ViewArgs | None:
    """The arguments, or None for ``--help``; a bad one raises :class:`ConfigError`."""
    args = ViewArgs()
    items = iter(argv)
    for arg in items:
        if arg in ("-h", "--help"):
            return None
        if arg == "--export" or arg.startswith("--export="):
            args.export = arg.partition("=")[2] or next(items, None)
            if not args.export:
                raise ConfigError("--export needs a file name: --export report.html")
        elif arg.startswith("-"):
            raise ConfigError(f"unknown option {arg}; see cookbook view --help")
        elif "=" in arg and not Path(arg).exists():
            key, _, value = arg.partition("=")
            if key == "host":
                args.host = value
            elif key in ("port", "poll"):
                try:
                    setattr(args, key, int(value) if key == "port" else float(value))
                except ValueError:
                    raise ConfigError(f"{key} must be a number, got {value!r}") from None
            else:
                raise ConfigError(f"unknown option {key}=; the options are port=, host=, poll= and --export")
        else:
            args.dirs.append(arg)
    if not args.dirs:
        raise ConfigError("give at least one directory: cookbook view RUN_DIR [RUN_DIR ...]")
    if args.poll <= 0:
        raise ConfigError(f"poll must be > 0 seconds, got {args.poll}")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args is None:
        print(USAGE, end="")
        return 0
    from cookbook.http_server import check_listen
    from cookbook.view.api import ViewData
    from cookbook.view.store import Store

    data = ViewData(Store(args.dirs))
    if args.export:
        from cookbook.view.export import export

        out = export(data, args.export)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
        return 0
    check_listen(args.host, args.port, has_keys=False, keys_hint="the viewer has no API keys; use an SSH tunnel")
    from cookbook.http_server import AppThread
    from cookbook.view.app import create_app

    server = AppThread(create_app(data, poll_seconds=args.poll), host=args.host, port=args.port, name="viewer")
    try:
        server.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); pick another port=") from None
    print(f"cookbook view: {server.url}/ ({len(data.store.sources())} directories found; Ctrl-C to stop)",
          file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
