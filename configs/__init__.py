"""Named presets for recipes, as package data: ``configs/<group>/<name>.toml``.

Nothing to import: ``cookbook.recipe_cli`` finds the presets with ``importlib.resources``, so
``preset=<name>`` works from a source checkout and from an installed (non-editable) package alike.
"""
