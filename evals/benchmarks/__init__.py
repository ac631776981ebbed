"""Benchmarks: one small file each, found by name.

    from evals.benchmarks import get_benchmark
    gsm8k = get_benchmark("gsm8k")                               # test split; $COOKBOOK_EVAL_DATA or the hub
    train = get_benchmark("gsm8k", source="data/gsm8k/train.jsonl")  # any file with the same fields
    gsm8k.examples(limit=20)      # BenchmarkProblem(messages, reference, id), in order
    gsm8k.grade(problem, text)    # 1.0 / 0.0, a cookbook.tasks.Task: RL rewards, SFT data, evals

A benchmark is a :class:`cookbook.tasks.Task` (``evals.benchmarks.base``). Built in: ``gsm8k``,
``math500``, ``aime24``, ``amc23``, ``svamp``, ``minerva_math`` and ``addition`` (the tiny model's
task; ``addition:<digits>``).

Adding one: a module in this folder with a :class:`Benchmark` subclass that sets ``name``
(usually a :class:`DatasetBenchmark` naming its file and hub id and turning a row into
``(question, reference)``); every module here is searched for subclasses on first lookup.

May import ``cookbook``, ``renderers`` and ``evals.graders``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

from cookbook.errors import ConfigError
from evals.benchmarks.base import Benchmark, BenchmarkProblem, DatasetBenchmark, MathBenchmark

__all__ = ["Benchmark", "BenchmarkProblem", "DatasetBenchmark", "MathBenchmark", "benchmark_names",
           "get_benchmark", "known_benchmark", "register_benchmark"]

_NOT_BENCHMARKS = {"base", "loading"}
_REGISTRY: dict[str, type[Benchmark]] = {}
_discovered = False


def register_benchmark(cls: type[Benchmark]) -> type[Benchmark]:
    """Make ``cls`` available by its ``name`` (for benchmarks defined outside this folder)."""
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> dict[str, type[Benchmark]]:
    global _discovered
    if not _discovered:
        for info in pkgutil.iter_modules(__path__):
            if info.name in _NOT_BENCHMARKS:
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, Benchmark) and not inspect.isabstract(cls) and cls.__module__ == module.__name__:
                    _REGISTRY.setdefault(cls.name, cls)
        _discovered = True
    return _REGISTRY


def benchmark_names() -> list[str]:
    return sorted(_discover())


def benchmark_class(name: str) -> type[Benchmark]:
    registry = _discover()
    if name not in registry:
        raise ConfigError(f"unknown benchmark {name!r}; available: {', '.join(sorted(registry))}")
    return registry[name]


def known_benchmark(config: Any, attr: str) -> None:
    """chz field validator: the option ``attr`` is None or names benchmarks (comma-separated; ``name:<arg>``
    as ``get_benchmark`` takes it), checked when the command line is parsed."""
    from evals.external import PREFIXES

    value = getattr(config, attr)
    for spec in (value or "").split(","):
        name = spec.strip().partition(":")[0]
        if name and name not in PREFIXES:  # another harness's task is looked up when it runs
            benchmark_class(name)


def get_benchmark(spec: str, *, source: str | None = None, split: str | None = None,
                  instruction: str | None = None, data_dir: str | None = None) -> Benchmark:
    """The benchmark named by ``spec`` (``name`` or ``name:<arg>``, e.g. ``addition:3``), or a task of
    another harness (``inspect:<task>``, ``lm_eval:<task>``: an ``evals.external.ExternalEval``).

    ``source`` (a file or hub id), ``split`` and ``data_dir`` (a folder laid out like
    ``../shared/data``, instead of ``$COOKBOOK_EVAL_DATA``) apply to benchmarks read from data
    (``data_dir`` is ignored by the others); ``instruction`` replaces the text appended to each question.
    """
    from evals.external import external_eval

    if (external := external_eval(spec)) is not None:  # inspect:<task>, lm_eval:<task>
        if source is not None or split is not None:
            raise ConfigError(f"{external.name} reads its own data: it takes no source or split")
        return external  # type: ignore[return-value]  # stands where a benchmark stands
    name, sep, arg = spec.strip().partition(":")
    cls = benchmark_class(name)
    options: dict[str, Any] = {k: v for k, v in (("source", source), ("split", split)) if v is not None}
    if options and not issubclass(cls, DatasetBenchmark):
        raise ConfigError(f"benchmark {name} is not read from data: it takes no {' or '.join(options)}")
    if sep:
        from_arg = getattr(cls, "from_arg", None)
        if from_arg is None:
            raise ConfigError(f"benchmark {name} takes no argument after ':' (got {spec!r})")
        benchmark = from_arg(arg)
    else:
        if data_dir is not None and issubclass(cls, DatasetBenchmark):
            options["data_dir"] = data_dir
        benchmark = cls(**options)
    if instruction is not None:
        benchmark.instruction = instruction
    return benchmark
