"""The ``cookbook`` command line.

    cookbook export CHECKPOINT --merged OUT_DIR     merged Hugging Face model
    cookbook export CHECKPOINT --peft OUT_DIR       PEFT LoRA adapter
"""

from __future__ import annotations

import argparse
import sys


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cookbook.backend.local.export import export_merged, export_peft

    root = Path(args.checkpoint_root) if args.checkpoint_root else None
    if args.merged:
        print(f"merged model written to {export_merged(args.checkpoint, args.merged, root=root)}")
    if args.peft:
        print(f"PEFT adapter written to {export_peft(args.checkpoint, args.peft, root=root)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cookbook", description="Post-training recipes over the Tinker primitives.")
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="export a local checkpoint as a merged HF model and/or a PEFT adapter")
    export.add_argument("checkpoint", help="local://<run>/<kind>/<name> or a checkpoint directory")
    export.add_argument("--merged", metavar="OUT_DIR", help="write a merged Hugging Face model here")
    export.add_argument("--peft", metavar="OUT_DIR", help="write a PEFT adapter here")
    export.add_argument("--checkpoint-root", help="root of local:// paths (default: COOKBOOK_CHECKPOINT_ROOT)")
    export.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "export" and not (args.merged or args.peft):
        parser.error("export needs --merged OUT_DIR and/or --peft OUT_DIR")
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
