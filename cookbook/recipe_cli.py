"""Command-line glue for recipes: ``key=value`` overrides (chz), named presets, ``--help``.

A recipe module defines a chz ``Config`` class and ``main(config)``; it ends with
``if __name__ == "__main__": run_recipe(Config, main, group="sl")``. Arguments:

- ``key=value`` and nested ``section.key=value`` (chz syntax);
- ``preset=<name>`` loads ``configs/<group>/<name>.toml`` (or a path to a TOML file) first, so
  later ``key=value`` arguments override it;
- ``--help`` prints every option with its type, default and current value.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable
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

T = TypeVar("T")

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


class RecipeArgumentError(ValueError):
    """Bad command-line arguments for a recipe (unknown key, bad value, unknown preset)."""


def preset_path(group: str, name: str) -> Path:
    candidate = Path(name).expanduser()
    if candidate.suffix == ".toml" and candidate.is_file():
        return candidate
    path = CONFIGS_DIR / group / f"{name}.toml"
    if not path.is_file():
        available = sorted(p.stem for p in (CONFIGS_DIR / group).glob("*.toml"))
        raise RecipeArgumentError(f"unknown preset {name!r} for {group} recipes; available: {', '.join(available) or 'none'}")
    return path


def load_preset(path: Path) -> dict[str, Any]:
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

    return flatten("", tomllib.loads(path.read_text()))


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
        raise RecipeArgumentError(str(exc).strip()) from None


def run_recipe(config_cls: type[T], main: Callable[[T], Any], argv: list[str] | None = None, *, group: str) -> int:
    """Parse arguments, run ``main(config)``; prints help or a one-screen error instead of a traceback."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        config = parse_config(config_cls, argv, group=group)
    except EntrypointHelpException as exc:
        print(str(exc).rstrip())
        return 0
    except RecipeArgumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    main(config)
    return 0
