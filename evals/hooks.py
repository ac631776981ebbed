"""Benchmarks as eval hooks of any training loop (SFT, RL, DPO: every loop takes ``eval_hooks``).

    hooks = benchmark_hooks(["gsm8k", "addition"], renderer, limit=100)   # {"eval/gsm8k": Hook, ...}
    train(config, data, eval_hooks=hooks)   # logs eval/gsm8k/accuracy, eval/gsm8k/stderr, ... every eval_every

A hook samples from the loop's current weights (the sampling client the loop hands its sampling
hooks) through the loop's renderer, with the runner's settings, and returns the summary's
numbers: ``accuracy``, ``stderr``, ``pass@k``, ``truncation_rate``, ``completion_tokens_mean``.
Nothing is written to disk; the loop logs the metrics to ``metrics.jsonl``.

A recipe exposes them with an :class:`EvalHooksConfig` section (``evals.benchmarks=gsm8k,math500
evals.limit=50`` on its command line) and passes ``config.evals.hooks(renderer)`` to its loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import chz

from cookbook.hooks import Hook
from cookbook.primitives import SamplingClient
from evals.benchmarks import Benchmark, get_benchmark
from evals.responders import SamplingClientResponder
from evals.runner import EvalSettings, evaluate
from renderers import Renderer

HOOK_METRICS = ("accuracy", "stderr", "truncation_rate", "completion_tokens_mean")


def benchmark_hook(benchmark: Benchmark | str, renderer: Renderer, *, limit: int | None = None, n: int = 1,
                   temperature: float | None = None, max_tokens: int | None = None, concurrency: int = 64,
                   context_length: int | None = None, every: int | None = None) -> Hook:
    """A sampling hook that runs ``benchmark`` (a name or a :class:`Benchmark`) and returns its summary."""
    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    settings = EvalSettings(n=n, limit=limit, temperature=temperature, max_tokens=max_tokens, concurrency=concurrency)
    settings.resolve(bench)  # bad settings fail now, not at the first eval

    def run(sampling_client: SamplingClient) -> dict[str, float]:
        responder = SamplingClientResponder(sampling_client, renderer, context_length=context_length)
        summary = evaluate(bench, responder, settings, progress=False).summary
        return {k: float(v) for k, v in summary.items()
                if v is not None and (k in HOOK_METRICS or k.startswith("pass@"))}
    return Hook(run, every=every)


def benchmark_hooks(benchmarks: str | Sequence[str], renderer: Renderer, **options) -> dict[str, Hook]:
    """``{"eval/<name>": benchmark_hook(name, ...)}`` for each benchmark (a list or a comma-separated string)."""
    names = [b.strip() for b in benchmarks.split(",")] if isinstance(benchmarks, str) else list(benchmarks)
    return {f"eval/{name}": benchmark_hook(name, renderer, **options) for name in names if name}


@chz.chz
class EvalHooksConfig:
    """A recipe's benchmark eval hooks (a config section: ``evals.benchmarks=gsm8k evals.limit=50``)."""

    benchmarks: str = ""  # comma-separated benchmark names, run every eval_every steps; empty: none
    limit: int | None = 100  # problems per benchmark (the first ones)
    n: int = 1
    temperature: float | None = None  # default: the benchmark's
    max_tokens: int | None = None  # default: the benchmark's
    data_dir: str | None = None  # benchmark files laid out like ../shared/data (default $COOKBOOK_EVAL_DATA)

    def hooks(self, renderer: Renderer, context_length: int | None = None) -> dict[str, Hook]:
        names = [b.strip() for b in self.benchmarks.split(",") if b.strip()]
        return {f"eval/{name}": benchmark_hook(get_benchmark(name, data_dir=self.data_dir), renderer,
                                               limit=self.limit, n=self.n, temperature=self.temperature,
                                               max_tokens=self.max_tokens, context_length=context_length)
                for name in names}
