"""Distillation recipes: ``python -m recipes.distill.<name> key=value ...`` (``cookbook run distill/<name>``)."""
