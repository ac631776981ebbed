"""Evals: benchmarks, graders, runner and sweeps; they may import cookbook and renderers."""
