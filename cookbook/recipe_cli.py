"""Command-line glue for recipes: ``key=value`` overrides (chz), named presets, ``--help``, user errors.

A recipe module defines a chz ``Config`` class and ``main(config)``; it ends with
``if __name__ == "__main__": raise SystemExit(run_recipe(Config, main, group="sl"))``. Arguments:

- ``key=value`` and nested ``section.key=value`` (chz syntax);
- ``preset=<name>`` loads ``configs/<group>/<name>.toml`` (package data of the ``configs``
  package, found with ``importlib.resources``; or a path to a TOML file) first, so later
  ``key=value`` arguments override it;
- ``--help`` prints every option with its type, default and current value;
- ``--debug`` (or ``COOKBOOK_DEBUG=1``) shows the traceback of a user error.

A user error (:class:`cookbook.errors.UserError`: bad option, bad data, missing file, a model that
cannot be loaded) prints ``error: <one line>`` to stderr and exits with status 2; other exceptions
are bugs and keep their traceback.
"""

from __future__ import annotations

import importlib.resources
import re
import sys
import tomllib
from collections.abc import Callable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import chz
from chz.blueprint import (
    ConstructionException,
    EntrypointHelpException,
    ExtraneousBlueprintArg,
    InvalidBlueprintArg,
    MissingBlueprintArg,
)

from cookbook.errors import ConfigError, UserError, debug_from_env, first_line

T = TypeVar("T")

PRESETS_PACKAGE = "configs"
DEBUG_FLAG = "--debug"


class RecipeArgumentError(ConfigError):
    """Bad command-line arguments for a recipe (unknown key, bad value, unknown preset)."""


def presets_dir(group: str) -> Traversable:
    """Where the presets of a recipe group live (``configs/<group>/``, installed or not)."""
    return importlib.resources.files(PRESETS_PACKAGE) / group


def preset_path(group: str, name: str) -> Traversable:
    candidate = Path(name).expanduser()
    if candidate.suffix == ".toml" and candidate.is_file():
        return candidate
    folder = presets_dir(group)
    path = folder / f"{name}.toml"
    if not path.is_file():
        available = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")) if folder.is_dir() else []
        raise RecipeArgumentError(f"unknown preset {name!r} for {group} recipes; "
                                  f"available: {', '.join(available) or 'none'}")
    return path


def load_preset(path: Traversable) -> dict[str, Any]:
    """A TOML preset flattened to chz's dotted keys (tables become ``section.key``)."""
    def flatten(prefix: str, table: dict[str, Any]) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in table.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                flat.update(flatten(f"{name}.", value))
            else:
                flat[name] = value
        return flat

    try:
        return flatten("", tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise RecipeArgumentError(f"{path}: not valid TOML ({exc})") from None


def parse_config(config_cls: type[T], argv: list[str], *, group: str) -> T:
    """Build a config from presets and overrides; raises RecipeArgumentError or EntrypointHelpException."""
    argv = list(argv)
    blueprint = chz.Blueprint(config_cls)
    presets = [a.split("=", 1)[1] for a in argv if a.startswith("preset=")]
    for name in presets:
        blueprint.apply(load_preset(preset_path(group, name)), layer_name=f"preset {name}")
    rest = [a for a in argv if not a.startswith("preset=")]
    bad = [a for a in rest if a != "--help" and "=" not in a]
    if bad:
        raise RecipeArgumentError(f"arguments must look like key=value, got {' '.join(bad)}")
    try:
        blueprint.apply_from_argv(rest)
        return blueprint.make()
    except EntrypointHelpException:
        raise
    except (ExtraneousBlueprintArg, InvalidBlueprintArg, MissingBlueprintArg, ConstructionException) as exc:
        raise RecipeArgumentError(_one_line(exc)) from None


def _one_line(exc: Exception) -> str:
    """chz's multi-line argument errors as one line that names the option and what to do."""
    text = str(exc).strip()
    if isinstance(exc, ExtraneousBlueprintArg):
        name = re.search(r"Extraneous argument '([^']+)'", text)
        hint = re.search(r"Did you mean '([^']+)'\?", text)
        if name:
            return (f"unknown option {name.group(1)!r}" + (f"; did you mean {hint.group(1)!r}?" if hint else "")
                    + " (--help lists every option)")
    if isinstance(exc, InvalidBlueprintArg):
        found = re.search(r"argument '([^']*)' provided for param '([^']+)'", text)
        reason = re.search(r"as a value:\s*\n(.+)", text)
        choices = re.search(r"to Literal\[(.*)\]", reason.group(1)) if reason else None
        if found and choices:  # an enumerated option: name the values it takes
            allowed = ", ".join(re.findall(r"'([^']*)'", choices.group(1)))
            return f"unknown {found.group(2)} {found.group(1)!r}; choose one of {allowed}"
        if found:
            return (f"bad value {found.group(1)!r} for {found.group(2)}"
                    + (f": {reason.group(1).strip()}" if reason else "") + " (--help lists every option's type)")
    return first_line(text)


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether tracebacks of user errors were asked for."""
    return [a for a in argv if a != DEBUG_FLAG], DEBUG_FLAG in argv or debug_from_env()


def report_user_errors(fn: Callable[[], int], *, debug: bool = False) -> int:
    """``fn()``'s exit status; a user error prints ``error: <message>`` and gives 2 (re-raised when ``debug``)."""
    try:
        return fn()
    except UserError as exc:
        if debug:
            raise
        print("error: " + " ".join(line.strip() for line in str(exc).splitlines() if line.strip()), file=sys.stderr)
        return 2


def run_recipe(config_cls: type[T], main: Callable[[T], Any], argv: list[str] | None = None, *, group: str,
               debug: bool = False) -> int:
    """Parse arguments, run ``main(config)``; prints help, or a one-line error for a user error.

    ``debug`` (or ``--debug`` in ``argv``, or ``COOKBOOK_DEBUG=1``) re-raises user errors instead.
    """
    argv, debug_flag = split_debug(sys.argv[1:] if argv is None else list(argv))
    debug = debug or debug_flag

    def run() -> int:
        try:
            config = parse_config(config_cls, argv, group=group)
        except EntrypointHelpException as exc:
            print(str(exc).rstrip())
            return 0
        main(config)
        return 0

    return report_user_errors(run, debug=debug)
