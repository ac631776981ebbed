"""lm-evaluation-harness tasks through the eval runner: ``cookbook eval benchmark=lm_eval:<task>``.

    cookbook eval benchmark=lm_eval:arc_easy model=Qwen/Qwen3-0.6B limit=100            # log-likelihoods
    cookbook eval benchmark=lm_eval:chat:gsm8k model=Qwen/Qwen3-8B limit=100            # chat, generated answers
    cookbook eval benchmark=lm_eval:my_tasks/@my_task checkpoint=local://<run>/sampler_weights/final
    cookbook eval benchmark=lm_eval:gsm8k backend=openai base_url=http://host:8000/v1 model=<name>

``<task>`` is an lm-eval task or group name; ``<folder or yaml>@<task>`` is a task of that folder of
task YAML files (lm-eval's ``--include_path``; only the folder is indexed, not lm-eval's own
tasks). The harness talks to the model over HTTP:

- with ``backend=local`` or ``tinker``, this process serves the runner's sampling client and
  renderer with ``cookbook serve``'s app on a free port of 127.0.0.1 for the duration of the run;
  with ``backend=openai``, the harness calls ``base_url`` itself;
- ``lm_eval:<task>`` uses lm-eval's ``local-completions`` model: raw text prompts, token ids
  counted by the server's tokenizer (``/tokenize``), log-likelihoods from the completions
  endpoint's prompt logprobs (``echo``, ``logprobs``), so every output type works (multiple
  choice, perplexity, generation) as lm-eval runs base models;
- ``lm_eval:chat:<task>`` uses ``local-chat-completions`` with lm-eval's chat formatting: each
  prompt becomes chat messages that the server renders with the model's renderer (generation
  tasks only; log-likelihood tasks need the completions endpoint).

``limit`` is lm-eval's ``--limit``; ``temperature`` and ``max_tokens`` (as ``max_gen_toks``)
override the task's generation settings when given; ``n`` must be 1 (lm-eval repeats samples in
the task's own config). The output directory gets the runner's files: one ``results.jsonl`` row per
document (the prompt, the target, the filtered response, and the task's first metric as the
``score``), ``summary.json`` (``accuracy`` = the mean of that metric, its standard error, and every
aggregated metric of the task as ``lm_eval/<metric>``), and lm-eval's samples under ``lm_eval/``.

May import ``cookbook``, ``renderers``, ``evals`` and ``lm_eval``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from cookbook.errors import ConfigError, UserError
from evals.external import ExternalEval, reuse, write_results
from evals.responders import OpenAIResponder, Responder, SamplingClientResponder
from evals.runner import RESULTS_FILE, EvalResult, EvalSettings, eval_config, summarize

SERVED_NAME = "cookbook"
CONCURRENT_REQUESTS = 32


class LMEvalTaskError(UserError, RuntimeError):
    """An lm-eval task that could not be found, loaded or run."""


class LMEval(ExternalEval):
    harness = "lm_eval"

    def __init__(self, task: str) -> None:
        super().__init__(task)
        rest = self.task
        self.chat = rest.startswith("chat:")
        rest = rest.removeprefix("chat:")
        path, sep, name = rest.rpartition("@")
        self.include_path, self.task_name = (path, name) if sep else (None, rest)
        if not self.task_name:
            raise ConfigError(f"{self.name}: name a task (lm_eval:<task>, lm_eval:<folder>@<task>)")

    async def evaluate_async(self, responder: Responder, settings: EvalSettings, *, output_dir: Path | None,
                             target: dict[str, Any], overwrite: bool, progress: bool) -> EvalResult:
        if settings.n != 1:
            raise ConfigError(f"{self.name}: n must be 1 (lm-eval repeats samples through the task's own config)")
        config = eval_config(self, settings, target)
        output_dir = Path(output_dir) if output_dir is not None else None
        if (summary := reuse(output_dir, config, overwrite)) is not None:
            rows = [json.loads(line) for line in (output_dir / RESULTS_FILE).read_text().splitlines() if line]
            return EvalResult({**summary, "reused_examples": summary["examples"]}, rows, output_dir)
        started = time.monotonic()
        if isinstance(responder, SamplingClientResponder):
            from cookbook.serve import ServedModel, ServerThread

            served = ServedModel(responder.sampling_client, responder.renderer, SERVED_NAME,
                                 context_length=responder.context_length)
            with ServerThread(served) as server:
                results = await asyncio.to_thread(self._run, server.url + "/v1", SERVED_NAME, None,
                                                  responder.context_length, settings, progress)
        elif isinstance(responder, OpenAIResponder):
            results = await asyncio.to_thread(self._run, str(responder.client.base_url).rstrip("/"), responder.model,
                                              responder.client.api_key, None, settings, progress)
        else:
            raise ConfigError(f"{self.name}: no way to reach {type(responder).__name__} over HTTP")
        rows, metrics = self._rows_and_metrics(results)
        summary = {"benchmark": self.name, **target, **settings.identity(), "limit": settings.limit,
                   **summarize(rows, 1), **metrics, "reused_examples": 0,
                   "seconds": round(time.monotonic() - started, 2)}
        write_results(output_dir, config, rows, summary)
        if output_dir is not None:
            samples = output_dir / "lm_eval" / "samples.jsonl"
            samples.parent.mkdir(parents=True, exist_ok=True)
            samples.write_text("".join(json.dumps(s, default=str) + "\n"
                                       for task in results.get("samples", {}).values() for s in task))
        return EvalResult(summary, rows, output_dir)

    def _run(self, base_url: str, model: str, api_key: str | None, context_length: int | None,
             settings: EvalSettings, progress: bool) -> dict[str, Any]:
        import lm_eval
        from lm_eval.tasks import TaskManager

        model_args: dict[str, Any] = {"model": model, "num_concurrent": CONCURRENT_REQUESTS, "max_retries": 1,
                                      "timeout": 600}
        if self.chat:
            lm, model_args["base_url"] = "local-chat-completions", base_url + "/chat/completions"
        else:
            lm, model_args["base_url"] = "local-completions", base_url + "/completions"
            model_args.update(tokenizer_backend="remote", tokenized_requests=True)
            if context_length:
                model_args["max_length"] = context_length
        if api_key:
            model_args["auth_token"] = api_key
        gen_kwargs = {k: v for k, v in (("temperature", settings.temperature), ("max_gen_toks", settings.max_tokens))
                      if v is not None}
        if self.include_path is not None:
            if not Path(self.include_path).exists():
                raise LMEvalTaskError(f"{self.name}: {self.include_path}: no such folder or file")
            # only the folder's tasks: indexing lm-eval's own ~15,000 takes ~20 s
            manager = TaskManager(include_path=self.include_path, include_defaults=False)
            where = f"in {self.include_path}"
        else:
            manager, where = TaskManager(), "among lm-eval's tasks"
        if not manager.match_tasks([self.task_name]):
            raise LMEvalTaskError(f"{self.name}: no task {self.task_name!r} {where}")
        try:
            results = lm_eval.simple_evaluate(
                model=lm, model_args=model_args, tasks=[self.task_name], task_manager=manager, limit=settings.limit,
                log_samples=True, apply_chat_template=self.chat, gen_kwargs=gen_kwargs or None,
                random_seed=settings.seed if settings.seed is not None else 0, bootstrap_iters=0,
                verbosity="INFO" if progress else "WARNING")
        except (ValueError, KeyError, FileNotFoundError) as exc:
            raise LMEvalTaskError(f"{self.name}: {exc}") from None
        if not results:
            raise LMEvalTaskError(f"{self.name}: lm-eval returned no results")
        return results

    def _rows_and_metrics(self, results: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        metrics = {f"lm_eval/{task}/{key}": value for task, values in results["results"].items()
                   for key, value in values.items() if key != "alias" and isinstance(value, int | float)}
        rows = []
        for task, samples in results.get("samples", {}).items():
            primary = _primary_metric(results["results"].get(task, {}), samples)
            for sample in samples:
                score = float(sample.get(primary, 0.0)) if primary else 0.0
                arguments = sample.get("arguments") or [[""]]
                first = arguments[0][0] if isinstance(arguments[0], list | tuple) else arguments[0]
                response = sample.get("filtered_resps") or sample.get("resps") or [""]
                doc = str(sample["doc_id"])
                rows.append({
                    "id": f"{task}/{doc}" if len(results["samples"]) > 1 else doc, "sample": 0,
                    "prompt": [{"role": "user", "content": str(first)}], "reference": str(sample.get("target", "")),
                    "response": _text(response), "extracted": None, "correct": score >= 1.0, "score": score,
                    "finished": True, "completion_tokens": 0, "prompt_tokens": 0, "metric": primary})
        return rows, metrics


def _primary_metric(aggregated: dict[str, Any], samples: list[dict[str, Any]]) -> str | None:
    """The task's first metric that every sample carries (``acc``, ``exact_match``, ...)."""
    names = [key.split(",")[0] for key in aggregated if "," in key and not key.split(",")[0].endswith("_stderr")]
    return next((name for name in names if samples and all(name in s for s in samples)), None)


def _text(response: Any) -> str:
    """A sample's (filtered) response as text: generated text, or the log-likelihoods lm-eval compared."""
    if isinstance(response, list) and len(response) == 1:
        response = response[0]
    return response if isinstance(response, str) else json.dumps(response, default=str)
