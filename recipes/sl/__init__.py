"""Supervised-learning recipes: ``python -m recipes.sl.<name> key=value ...`` or ``cookbook run sl/<name> ...``."""
