"""Runnable, copyable recipes (recipes/sl, recipes/rl, recipes/dpo, recipes/distill); they may import cookbook, renderers and evals."""
