"""Evals: graders today (``graders``); benchmarks, the runner and sweeps as they come. They build on
``cookbook.completers`` (sampling), ``cookbook.tasks`` (problem sets) and ``cookbook.hooks`` (inline
evals in a loop). May import cookbook and renderers; never recipes.
"""
