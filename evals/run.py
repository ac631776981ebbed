"""Evaluate a model on a benchmark from the command line.

    cookbook eval benchmark=gsm8k model=Qwen/Qwen3-8B limit=100        # or: python -m evals.run ...
    cookbook eval benchmark=addition checkpoint=local://<run>/weights/step_000300
    cookbook eval benchmark=math500 backend=tinker model=Qwen/Qwen3-8B checkpoint=tinker://...
    cookbook eval benchmark=gsm8k backend=openai base_url=http://127.0.0.1:8000/v1 model=my-model

``backend`` is ``local`` (in-process reference backend; ``model`` is the base model, ``checkpoint``
an adapter checkpoint of it), ``tinker`` (the hosted service or a Tinker-compatible server at
``base_url``) or ``openai`` (any OpenAI-compatible endpoint at ``base_url``; ``model`` is the
endpoint's model name, ``api_key`` or ``$OPENAI_API_KEY`` its key). Results go to ``output_dir``
(default ``runs/eval/<benchmark>/<model>[/<checkpoint>]``); running the same command again resumes
or reuses them. ``--help`` lists every option.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Literal

import chz

from cookbook.backend import service_client
from cookbook.completers import known_renderer, renderer_for, sampling_client
from cookbook.errors import ConfigError
from cookbook.primitives import max_context_length
from cookbook.recipe_cli import run_recipe
from evals.benchmarks import get_benchmark, known_benchmark
from evals.responders import OpenAIResponder, Responder, SamplingClientResponder
from evals.runner import EvalResult, EvalSettings, evaluate
from renderers import get_recommended_renderer_name

EvalBackend = Literal["local", "tinker", "openai"]


@chz.chz
class EvalConfig:
    # gsm8k, math500, ..., humaneval, mbpp, mmlu_pro, ifeval, inspect:<task>, lm_eval:<task>, ...
    benchmark: str = chz.field(validator=known_benchmark)
    model: str = "tiny"  # base model (local, tinker) or the endpoint's model name (openai)
    checkpoint: str | None = None  # adapter checkpoint of `model` (local://..., tinker://..., a directory)
    renderer: str | None = chz.field(default=None, validator=known_renderer)  # None: `model`'s recommended one
    backend: EvalBackend = "local"  # local, tinker or openai
    base_url: str | None = None  # Tinker-compatible server (tinker) or OpenAI-compatible endpoint (openai)
    api_key: str | None = None  # openai endpoint key (default $OPENAI_API_KEY)
    source: str | None = None  # benchmark data: a .jsonl/.json/.parquet file or a hub id (default: built in)
    split: str | None = None
    data_dir: str | None = None  # benchmark files laid out like ../shared/data (default $COOKBOOK_EVAL_DATA)
    instruction: str | None = None  # replaces the benchmark's instruction after each question
    limit: int | None = None  # the first `limit` problems
    n: int = 1  # samples per problem; pass@k for k <= n
    temperature: float | None = None  # default: the benchmark's (0 = greedy)
    max_tokens: int | None = None  # default: the benchmark's
    concurrency: int = 64  # problems in flight at once
    seed: int | None = None
    output_dir: str | None = None
    overwrite: bool = False  # replace results of a different configuration in output_dir
    progress: bool = True


def make_responder(config: EvalConfig) -> Responder:
    if config.backend == "openai":
        if config.checkpoint:
            raise ConfigError("backend=openai evaluates the endpoint's model: give model=<name>, not checkpoint=")
        return OpenAIResponder.connect(config.base_url, config.model, config.api_key)
    service = service_client(config.backend, **({"base_url": config.base_url} if config.base_url else {}))
    renderer = renderer_for(config.model, config.renderer)
    sampler = sampling_client(service, config.model, config.checkpoint)
    return SamplingClientResponder(sampler, renderer, context_length=max_context_length(service, config.model))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("://", "_")).strip("_") or "_"


def default_output_dir(config: EvalConfig) -> str:
    parts = ["runs", "eval", slug(config.benchmark), slug(config.model)]
    return "/".join([*parts, slug(config.checkpoint)] if config.checkpoint else parts)


def target_of(config: EvalConfig) -> dict[str, Any]:
    """What answered, as recorded in config.json and the summary."""
    target: dict[str, Any] = {"model": config.model, "checkpoint": config.checkpoint, "backend": config.backend}
    if config.backend != "local":
        target["base_url"] = config.base_url
    if config.backend != "openai":
        target["renderer"] = config.renderer or get_recommended_renderer_name(config.model)
    return target


def format_summary(summary: dict[str, Any]) -> str:
    """One line: accuracy ± stderr, pass@k, truncation, tokens."""
    stderr = f" ± {summary['stderr']:.3f}" if summary.get("stderr") is not None else ""
    passes = " ".join(f"{k} {v:.3f}" for k, v in summary.items() if k.startswith("pass@") and k != "pass@1")
    samples = "1 sample" if summary["n"] == 1 else f"{summary['n']} samples"
    return (f"{summary['benchmark']}: accuracy {summary['accuracy']:.3f}{stderr} ({summary['examples']} problems, "
            f"{samples} each){'; ' + passes if passes else ''}; truncated {summary['truncation_rate']:.1%}; "
            f"{summary['completion_tokens_mean']:.0f} tokens per answer")


def main(config: EvalConfig) -> EvalResult:
    benchmark = get_benchmark(config.benchmark, source=config.source, split=config.split,
                              instruction=config.instruction, data_dir=config.data_dir)
    settings = EvalSettings(n=config.n, limit=config.limit, temperature=config.temperature,
                            max_tokens=config.max_tokens, concurrency=config.concurrency, seed=config.seed)
    settings.resolve(benchmark)
    if config.backend != "openai":
        renderer_for(config.model, config.renderer)  # a model without a recommended renderer fails before any work
    output_dir = config.output_dir or default_output_dir(config)
    result = evaluate(benchmark, make_responder(config), settings, output_dir=output_dir, target=target_of(config),
                      overwrite=config.overwrite, progress=config.progress)
    print(format_summary(result.summary))
    print(f"results: {output_dir}/results.jsonl, summary: {output_dir}/summary.json")
    return result


def cli(argv: list[str] | None = None, *, debug: bool = False) -> int:
    """``cookbook eval key=value ...`` (``python -m evals.run``)."""
    return run_recipe(EvalConfig, main, sys.argv[1:] if argv is None else argv, group="eval", debug=debug)


if __name__ == "__main__":
    raise SystemExit(cli())
