"""The ``cookbook`` command (also ``python -m recipes``).

    cookbook quickstart [key=value ...]             train tiny on addition, report accuracy
    cookbook run sl/chat_sft [key=value ...]        run a recipe (recipes/<group>/<name>.py)
    cookbook export CHECKPOINT --merged OUT_DIR     merged Hugging Face model
    cookbook export CHECKPOINT --peft OUT_DIR       PEFT LoRA adapter
    cookbook serve-tinker [port=8000 ...]           the local backend behind the Tinker HTTP API
    cookbook eval benchmark=gsm8k [model=...] ...   evaluate a model or checkpoint on a benchmark
    cookbook sweep runs=DIR,... benchmarks=a,b ...  checkpoints x benchmarks -> table and plot
    cookbook plot RUN_DIR... [out=FILE.png]         training curves of runs as a PNG
    cookbook serve base_model=... [model_path=...]  an OpenAI-compatible server over a checkpoint
    cookbook view RUN_DIR... [port=8080]            a local web page of runs, episodes, evals (--export FILE)

A user error (bad option, bad data line, missing file, a model that cannot be loaded, an unknown
checkpoint) prints ``error: <one line>`` and exits with status 2; ``--debug`` anywhere on the
command line, or ``COOKBOOK_DEBUG=1``, shows its traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import recipes
from cookbook.backend import export_checkpoint
from cookbook.recipe_cli import report_user_errors, run_recipe, split_debug


def recipe_names() -> list[str]:
    names = []
    for group in pkgutil.iter_modules(recipes.__path__):
        if group.ispkg:
            module = importlib.import_module(f"recipes.{group.name}")
            names += [f"{group.name}/{m.name}" for m in pkgutil.iter_modules(module.__path__) if not m.ispkg]
    return sorted(names)


def run(name: str, argv: list[str], *, debug: bool = False) -> int:
    """``cookbook run <group>/<recipe> key=value ...``: the recipe module's Config and main."""
    group, _, recipe = name.partition("/")
    if name not in recipe_names():
        print(f"error: unknown recipe {name!r}; available: {', '.join(recipe_names())}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"recipes.{group}.{recipe}")
    return run_recipe(module.Config, module.main, argv, group=group, debug=debug)


def _export(args: argparse.Namespace) -> int:
    written = export_checkpoint(args.checkpoint, merged=args.merged, peft=args.peft,
                                checkpoint_root=args.checkpoint_root)
    for kind, label in (("merged", "merged model"), ("peft", "PEFT adapter")):
        if kind in written:
            print(f"{label} written to {written[kind]}")
    return 0


def _tool(command: str, argv: list[str], *, debug: bool) -> int:
    """``eval``, ``sweep``, ``plot``, ``serve``, ``view``: imported on use (plotting and the web servers are heavy)."""
    if command == "view":
        from cookbook.view import main as view

        return report_user_errors(lambda: view(argv), debug=debug)
    if command == "eval":
        from evals.run import cli
    elif command == "sweep":
        from evals.sweeps import cli
    elif command == "plot":
        from evals.plots import main as plot

        return report_user_errors(lambda: plot(argv), debug=debug)
    else:
        from cookbook.serve import main as cli
    return cli(argv, debug=debug)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cookbook", description="Post-training recipes over the Tinker primitives.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of user errors (or COOKBOOK_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("quickstart",
                   help="train the tiny model on addition and report accuracy (cookbook quickstart --help)")
    sub.add_parser("run", help="run a recipe: cookbook run sl/chat_sft key=value ... (--help for its options)")
    sub.add_parser("serve-tinker", help="serve the local backend for the official tinker SDK (--help for options)")
    sub.add_parser("eval", help="evaluate a model on a benchmark: cookbook eval benchmark=gsm8k ... (--help)")
    sub.add_parser("sweep", help="checkpoints x benchmarks -> results table and plot (--help for options)")
    sub.add_parser("plot", help="training curves of run directories as a PNG: cookbook plot RUN_DIR...")
    sub.add_parser("serve", help="an OpenAI-compatible server over a model or checkpoint (--help for options)")
    sub.add_parser("view", help="a local web page of runs, evals and sweeps: cookbook view RUN_DIR... (--help)")
    export = sub.add_parser("export", help="export a local checkpoint as a merged HF model and/or a PEFT adapter")
    export.add_argument("checkpoint", help="local://<run>/<kind>/<name> or a checkpoint directory")
    export.add_argument("--merged", metavar="OUT_DIR", help="write a merged Hugging Face model here")
    export.add_argument("--peft", metavar="OUT_DIR", help="write a PEFT adapter here")
    export.add_argument("--checkpoint-root", help="root of local:// paths (default: COOKBOOK_CHECKPOINT_ROOT)")
    export.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv, debug = split_debug(sys.argv[1:] if argv is None else list(argv))
    if argv[:1] == ["quickstart"]:
        return run("sl/quickstart", argv[1:], debug=debug)
    if argv[:1] == ["serve-tinker"]:
        from cookbook.backend.tinker_server import main as serve_tinker  # imports the web framework

        return report_user_errors(lambda: serve_tinker(argv[1:]), debug=debug)
    if argv[:1] in (["eval"], ["sweep"], ["plot"], ["serve"], ["view"]):
        return _tool(argv[0], argv[1:], debug=debug)
    if argv[:1] == ["run"]:
        if len(argv) < 2 or argv[1].startswith("-"):
            print(f"usage: cookbook run <recipe> [key=value ...]; recipes: {', '.join(recipe_names())}")
            return 0 if argv[1:2] in (["--help"], ["-h"]) else 2
        return run(argv[1], argv[2:], debug=debug)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "export" and not (args.merged or args.peft):
        parser.error("export needs --merged OUT_DIR and/or --peft OUT_DIR")
    return report_user_errors(lambda: args.func(args), debug=debug)


if __name__ == "__main__":
    sys.exit(main())
