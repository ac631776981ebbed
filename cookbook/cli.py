"""The ``cookbook`` command line.

    cookbook quickstart [key=value ...]             train tiny on addition, report accuracy
    cookbook run sl/chat_sft [key=value ...]        run a recipe (recipes/<group>/<name>.py)
    cookbook export CHECKPOINT --merged OUT_DIR     merged Hugging Face model
    cookbook export CHECKPOINT --peft OUT_DIR       PEFT LoRA adapter
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
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


def recipe_names() -> list[str]:
    import recipes

    names = []
    for group in pkgutil.iter_modules(recipes.__path__):
        if group.ispkg:
            module = importlib.import_module(f"recipes.{group.name}")
            names += [f"{group.name}/{m.name}" for m in pkgutil.iter_modules(module.__path__) if not m.ispkg]
    return sorted(names)


def run(name: str, argv: list[str]) -> int:
    """``cookbook run <group>/<recipe> key=value ...``: the recipe module's Config and main."""
    from cookbook.recipe_cli import run_recipe

    group, _, recipe = name.partition("/")
    if name not in recipe_names():
        print(f"error: unknown recipe {name!r}; available: {', '.join(recipe_names())}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"recipes.{group}.{recipe}")
    return run_recipe(module.Config, module.main, argv, group=group)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cookbook", description="Post-training recipes over the Tinker primitives.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("quickstart", help="train the tiny model on addition and report accuracy (cookbook quickstart --help)")
    sub.add_parser("run", help="run a recipe: cookbook run sl/chat_sft key=value ... (--help for its options)")
    export = sub.add_parser("export", help="export a local checkpoint as a merged HF model and/or a PEFT adapter")
    export.add_argument("checkpoint", help="local://<run>/<kind>/<name> or a checkpoint directory")
    export.add_argument("--merged", metavar="OUT_DIR", help="write a merged Hugging Face model here")
    export.add_argument("--peft", metavar="OUT_DIR", help="write a PEFT adapter here")
    export.add_argument("--checkpoint-root", help="root of local:// paths (default: COOKBOOK_CHECKPOINT_ROOT)")
    export.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["quickstart"]:
        return run("sl/quickstart", argv[1:])
    if argv[:1] == ["run"]:
        if len(argv) < 2 or argv[1].startswith("-"):
            print(f"usage: cookbook run <recipe> [key=value ...]; recipes: {', '.join(recipe_names())}")
            return 0 if argv[1:2] in (["--help"], ["-h"]) else 2
        return run(argv[1], argv[2:])
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
