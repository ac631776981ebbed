"""Inspect AI tasks through the eval runner: ``cookbook eval benchmark=inspect:<task>``, sweeps, eval hooks.

    cookbook eval benchmark=inspect:my_tasks.py@addition checkpoint=local://<run>/sampler_weights/final
    cookbook eval benchmark=inspect:inspect_evals/gsm8k model=Qwen/Qwen3-8B limit=100   # pip install inspect-evals
    cookbook sweep runs=runs/qs benchmarks=addition,inspect:my_tasks.py@addition
    hooks = {"eval/inspect": benchmark_hook("inspect:my_tasks.py@addition", renderer, limit=50)}

``<task>`` is what ``inspect eval`` takes: ``file.py``, ``file.py@task_name``, or a registered
task. It runs with ``inspect_ai.eval_async`` on the cookbook model provider
(``evals.inspect_model``) over the runner's sampling client and renderer (``backend=local`` or
``tinker``); ``limit`` is Inspect's sample limit, ``n`` its epochs, and ``temperature``,
``max_tokens``, ``seed`` override the task's generation config when given (else the task's; our
provider samples greedily unless told otherwise). The output directory gets the runner's files
(one ``results.jsonl`` row per sample and epoch, scored by the task's first scorer as a number in
[0, 1]; ``summary.json`` with ``accuracy`` = the mean score, its standard error, pass@k, and the
task's own metrics as ``inspect/<scorer>/<metric>``) and Inspect's log under ``inspect/``.

May import ``cookbook``, ``renderers``, ``evals`` and ``inspect_ai``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from cookbook.errors import ConfigError, UserError
from evals.external import ExternalEval, reuse, write_results
from evals.responders import Responder, SamplingClientResponder
from evals.runner import RESULTS_FILE, EvalResult, EvalSettings, eval_config, summarize


class InspectTaskError(UserError, RuntimeError):
    """An Inspect task that could not be loaded or did not finish."""


class InspectEval(ExternalEval):
    harness = "inspect"

    async def evaluate_async(self, responder: Responder, settings: EvalSettings, *, output_dir: Path | None,
                             target: dict[str, Any], overwrite: bool, progress: bool) -> EvalResult:
        config = eval_config(self, settings, target)
        output_dir = Path(output_dir) if output_dir is not None else None
        if (summary := reuse(output_dir, config, overwrite)) is not None:
            rows = [json.loads(line) for line in (output_dir / RESULTS_FILE).read_text().splitlines() if line]
            return EvalResult({**summary, "reused_examples": summary["examples"]}, rows, output_dir)
        if not isinstance(responder, SamplingClientResponder):
            raise ConfigError("inspect: tasks sample through a sampling client (backend=local or tinker); for an "
                              "OpenAI-compatible endpoint run `inspect eval` with Inspect's openai-api provider")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="cookbook-inspect-") as scratch:
            log = await self._run(responder, settings, (output_dir / "inspect") if output_dir else Path(scratch),
                                  progress)
        rows = [sample_row(sample) for sample in log.samples or []]
        summary = {"benchmark": self.name, **target, **settings.identity(), "limit": settings.limit,
                   **summarize(rows, settings.n), **inspect_metrics(log), "inspect_log": log.location,
                   "reused_examples": 0, "seconds": round(time.monotonic() - started, 2)}
        write_results(output_dir, config, rows, summary)
        return EvalResult(summary, rows, output_dir)

    async def _run(self, responder: SamplingClientResponder, settings: EvalSettings, log_dir: Path,
                   progress: bool) -> Any:
        from inspect_ai import eval_async
        from inspect_ai.util._display import init_display_type  # eval_async takes no display argument

        from evals.inspect_model import cookbook_model

        init_display_type("plain" if progress else "none")

        model = cookbook_model(responder.sampling_client, responder.renderer, context_length=responder.context_length)
        generation = {k: v for k, v in (("temperature", settings.temperature), ("max_tokens", settings.max_tokens),
                                        ("seed", settings.seed)) if v is not None}
        try:
            logs = await eval_async(self.task, model=model, log_dir=str(log_dir), limit=settings.limit,
                                    epochs=settings.n, log_format="json", score_display=False, **generation)
        except BaseException as exc:  # noqa: BLE001 - a task that cannot be loaded is the user's to fix
            if (cause := _task_error(exc)) is None:
                raise
            raise InspectTaskError(f"inspect task {self.task!r}: {str(cause).removeprefix('Error: ')}") from None
        if len(logs) != 1:
            raise InspectTaskError(f"inspect task {self.task!r} names {len(logs)} tasks; name one (file.py@task)")
        log = logs[0]
        if log.status != "success":
            error = log.error.message if log.error else log.status
            raise InspectTaskError(f"inspect task {self.task!r} did not finish: {error}")
        return log


def _task_error(exc: BaseException) -> BaseException | None:
    """The user error inside what ``eval_async`` raised (it wraps them in exception groups), or None."""
    from inspect_ai._util.error import PrerequisiteError

    if isinstance(exc, BaseExceptionGroup):
        return next((e for e in map(_task_error, exc.exceptions) if e is not None), None)
    return exc if isinstance(exc, PrerequisiteError | FileNotFoundError | ModuleNotFoundError | LookupError) else None


def score_value(score: Any) -> float:
    """An Inspect score as a number in [0, 1] (``C``/``I``/``P``, booleans, numbers; a dict: its mean)."""
    from inspect_ai.scorer import value_to_float

    value = score.value
    to_float = value_to_float()
    if isinstance(value, dict):
        values = [to_float(v) for v in value.values()]
        return sum(values) / len(values) if values else 0.0
    if isinstance(value, list):
        return sum(to_float(v) for v in value) / len(value) if value else 0.0
    return float(to_float(value))


def sample_row(sample: Any) -> dict[str, Any]:
    """One results row (the runner's format) for an Inspect sample of one epoch."""
    from evals.inspect_model import to_message

    scores = list((sample.scores or {}).values())
    score = score_value(scores[0]) if scores else 0.0
    prompt = [{"role": "user", "content": sample.input}] if isinstance(sample.input, str) \
        else [to_message(m) for m in sample.input]
    target = sample.target if isinstance(sample.target, str) else "\n".join(sample.target)
    usage = sample.output.usage
    return {"id": str(sample.id), "sample": sample.epoch - 1, "prompt": prompt, "reference": target,
            "response": sample.output.completion, "extracted": scores[0].answer if scores else None,
            "correct": score >= 1.0, "score": score, "finished": sample.output.stop_reason != "max_tokens",
            "completion_tokens": usage.output_tokens if usage else 0,
            "prompt_tokens": usage.input_tokens if usage else 0}


def inspect_metrics(log: Any) -> dict[str, float]:
    """The task's own metrics: ``inspect/<scorer>/<metric>``."""
    if log.results is None:
        return {}
    return {f"inspect/{scores.name}/{name}": metric.value for scores in log.results.scores
            for name, metric in scores.metrics.items()}
