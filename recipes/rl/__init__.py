"""RL recipes: ``python -m recipes.rl.<name> key=value ...`` or ``cookbook run rl/<name> ...``."""
