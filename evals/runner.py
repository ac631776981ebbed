"""The eval runner: a benchmark's problems through a responder, graded, saved, summarised.

    result = evaluate(get_benchmark("gsm8k"), SamplingClientResponder(sampler, renderer),
                      EvalSettings(n=4, limit=100), output_dir="runs/eval/gsm8k")
    result.summary["accuracy"], result.summary["pass@4"]

At most ``concurrency`` problems are in flight at once (each asks for ``n`` samples in one
request, so the backend batches them). A reply that did not finish (cut off at ``max_tokens``, or
malformed) scores 0, as in ``cookbook.hooks.accuracy_hook`` and the RL task environments.

With an ``output_dir``:

- ``results.jsonl``: one line per sample (``id``, ``sample``, ``prompt`` messages, ``reference``,
  ``response``, ``extracted`` answer, ``correct``, ``score``, ``finished``, ``completion_tokens``),
  written as each problem is graded;
- ``summary.json``: accuracy (mean score), its standard error over problems, unbiased pass@k,
  truncation rate, token counts, settings;
- ``config.json``: what was evaluated and how (benchmark, source, model, checkpoint, ``n``,
  temperature, max_tokens, ...). Running again with the same configuration resumes: problems whose
  ids already have all ``n`` samples are reused, the rest are run (a larger ``limit`` extends the
  results). A different configuration is refused unless ``overwrite``.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from cookbook.errors import ConfigError, UserError
from cookbook.progress import StepProgress
from evals.benchmarks import Benchmark, BenchmarkProblem
from evals.external import ExternalEval
from evals.passk import default_ks, mean_pass_at_k
from evals.responders import Reply, Responder

__all__ = ["EvalDirError", "EvalResult", "EvalSettings", "ResultStore", "eval_config", "evaluate", "evaluate_async",
           "grade_rows", "run_sync", "summarize"]

T = TypeVar("T")

RESULTS_FILE, SUMMARY_FILE, CONFIG_FILE = "results.jsonl", "summary.json", "config.json"


class EvalDirError(UserError, RuntimeError):
    """An output directory that holds the results of a different evaluation."""


@dataclass(frozen=True)
class EvalSettings:
    """How to sample. ``temperature`` / ``max_tokens`` None: the benchmark's defaults."""

    n: int = 1  # samples per problem (pass@k for k <= n)
    limit: int | None = None  # the first `limit` problems
    temperature: float | None = None
    max_tokens: int | None = None
    concurrency: int = 64  # problems in flight at once
    seed: int | None = None  # sampling seed of problem i is seed + i (None: unseeded)

    def resolve(self, benchmark: Benchmark) -> EvalSettings:
        settings = replace(self, temperature=benchmark.temperature if self.temperature is None else self.temperature,
                           max_tokens=benchmark.max_tokens if self.max_tokens is None else self.max_tokens)
        settings.check()
        return settings

    def check(self) -> None:
        if self.n < 1:
            raise ConfigError(f"n must be >= 1, got {self.n}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {self.concurrency}")

    def identity(self) -> dict[str, Any]:
        """The settings that change results (not ``limit`` or ``concurrency``)."""
        return {"n": self.n, "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}


@dataclass
class EvalResult:
    summary: dict[str, Any]
    rows: list[dict[str, Any]]  # one per sample, in problem order
    output_dir: Path | None


def evaluate(benchmark: Benchmark | ExternalEval, responder: Responder, settings: EvalSettings = EvalSettings(), *,
             output_dir: str | Path | None = None, target: Mapping[str, Any] | None = None,
             overwrite: bool = False, progress: bool = True) -> EvalResult:
    """Run (or resume) ``benchmark`` against ``responder``; see the module docstring.

    ``target`` describes what answered (model, checkpoint, endpoint); it is part of the
    configuration that a resumed run must match, and is copied into the summary.
    """
    return run_sync(evaluate_async(benchmark, responder, settings, output_dir=output_dir, target=target,
                                   overwrite=overwrite, progress=progress))


async def evaluate_async(benchmark: Benchmark | ExternalEval, responder: Responder,
                         settings: EvalSettings = EvalSettings(), *, output_dir: str | Path | None = None,
                         target: Mapping[str, Any] | None = None, overwrite: bool = False,
                         progress: bool = True) -> EvalResult:
    if isinstance(benchmark, ExternalEval):  # another harness runs it (evals.external)
        return await benchmark.evaluate_async(responder, settings.resolve(benchmark), output_dir=output_dir,
                                              target=dict(target or {}), overwrite=overwrite, progress=progress)
    started = time.monotonic()
    settings = settings.resolve(benchmark)
    config = eval_config(benchmark, settings, target)
    examples = benchmark.examples(settings.limit)
    store = ResultStore(Path(output_dir), config, settings.n, overwrite) if output_dir is not None else None
    done: dict[str, list[dict[str, Any]]] = store.finished() if store else {}
    todo = [(i, ex) for i, ex in enumerate(examples) if ex.id not in done]
    reused = len(examples) - len(todo)
    semaphore = asyncio.Semaphore(settings.concurrency)
    tally = {"examples": reused, "score": sum(_mean_score(done[ex.id]) for ex in examples if ex.id in done)}

    with StepProgress(len(examples), reused, benchmark.name, enabled=progress and bool(todo),
                      fields={"acc": "acc {}"}) as bar:
        async def run_one(index: int, example: BenchmarkProblem) -> None:
            async with semaphore:
                seed = None if settings.seed is None else settings.seed + index
                replies = await responder.respond(example.messages, n=settings.n, max_tokens=settings.max_tokens,
                                                  temperature=settings.temperature, seed=seed)
            rows = await asyncio.to_thread(grade_rows, benchmark, example, replies)
            done[example.id] = rows
            if store:
                store.append(rows)
            tally["examples"] += 1
            tally["score"] += _mean_score(rows)
            bar.update(tally["examples"], acc=f"{tally['score'] / tally['examples']:.3f}")

        tasks = [asyncio.ensure_future(run_one(index, example)) for index, example in todo]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # stop the others; what finished is saved, so a rerun resumes
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    rows = [row for ex in examples for row in done[ex.id]]
    summary = {"benchmark": benchmark.name, **dict(target or {}), **settings.identity(), "limit": settings.limit,
               **summarize(rows, settings.n), "reused_examples": reused,
               "seconds": round(time.monotonic() - started, 2)}
    if store:
        store.write_summary(summary)
    return EvalResult(summary, rows, store.path if store else None)


def eval_config(benchmark: Benchmark, settings: EvalSettings, target: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """What ``config.json`` records: the benchmark, what answered, the resolved sampling settings."""
    config = {**benchmark.identity(), **dict(target or {}), **settings.resolve(benchmark).identity()}
    return json.loads(json.dumps(config, default=str))


def grade_rows(benchmark: Benchmark, example: BenchmarkProblem, replies: Sequence[Reply]) -> list[dict[str, Any]]:
    """One results row per reply; an unfinished reply scores 0."""
    rows = []
    for sample, reply in enumerate(replies):
        score = float(benchmark.grade(example, reply.text)) if reply.finished else 0.0
        rows.append({"id": example.id, "sample": sample, "prompt": example.messages, "reference": example.reference,
                     "response": reply.text, "extracted": benchmark.extract(reply.text), "correct": score >= 1.0,
                     "score": score, "finished": reply.finished, "completion_tokens": reply.completion_tokens,
                     "prompt_tokens": reply.prompt_tokens})
    return rows


def summarize(rows: Sequence[dict[str, Any]], n: int) -> dict[str, Any]:
    """Accuracy (mean score) with its standard error over problems, pass@k, truncation and tokens."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(row["id"], []).append(row)
    if not by_id:
        return {"examples": 0, "samples": 0, "accuracy": None, "stderr": None}
    means = [_mean_score(group) for group in by_id.values()]
    accuracy = sum(means) / len(means)
    stderr = (math.sqrt(sum((m - accuracy) ** 2 for m in means) / (len(means) - 1) / len(means))
              if len(means) > 1 else None)
    counts = [(len(group), sum(r["correct"] for r in group)) for group in by_id.values()]
    summary: dict[str, Any] = {"examples": len(by_id), "samples": len(rows), "accuracy": accuracy, "stderr": stderr}
    summary.update({f"pass@{k}": mean_pass_at_k(counts, k) for k in default_ks(n)})
    completion = sum(r["completion_tokens"] for r in rows)
    summary.update(truncation_rate=sum(not r["finished"] for r in rows) / len(rows),
                   completion_tokens_mean=completion / len(rows), completion_tokens=completion,
                   prompt_tokens=sum(group[0]["prompt_tokens"] for group in by_id.values()))
    return summary


def _mean_score(rows: Sequence[dict[str, Any]]) -> float:
    return sum(r["score"] for r in rows) / len(rows) if rows else 0.0


class ResultStore:
    """An eval's output directory: ``config.json``, ``results.jsonl``, ``summary.json``."""

    def __init__(self, path: Path, config: dict[str, Any], n: int, overwrite: bool = False) -> None:
        self.path, self.n = path, n
        self.config = config
        existing = path / CONFIG_FILE
        if existing.exists() and not overwrite:
            old = json.loads(existing.read_text())
            if old != self.config:
                changed = sorted(k for k in set(old) | set(self.config) if old.get(k) != self.config.get(k))
                raise EvalDirError(f"{path} holds results of a different evaluation (differs in: "
                                   f"{', '.join(changed)}); pass overwrite=true to replace them, or choose another "
                                   "output_dir")
        elif overwrite:
            for name in (RESULTS_FILE, SUMMARY_FILE, CONFIG_FILE):
                (path / name).unlink(missing_ok=True)
        path.mkdir(parents=True, exist_ok=True)
        existing.write_text(json.dumps(self.config, indent=2, sort_keys=True))
        self._lock = threading.Lock()

    def finished(self) -> dict[str, list[dict[str, Any]]]:
        """Rows of the problems that have all ``n`` samples; rows of unfinished problems are dropped."""
        file = self.path / RESULTS_FILE
        if not file.exists():
            return {}
        groups: dict[str, list[dict[str, Any]]] = {}
        lines = file.read_text().splitlines()
        for line in lines:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line cut off by an interruption
                    continue
                groups.setdefault(row["id"], []).append(row)
        complete = {i: sorted(g, key=lambda r: r["sample"]) for i, g in groups.items()
                    if sorted(r["sample"] for r in g) == list(range(self.n))}
        if sum(len(g) for g in complete.values()) != len([line for line in lines if line.strip()]):
            file.write_text("".join(json.dumps(r) + "\n" for g in complete.values() for r in g))
        return complete

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        with self._lock, open(self.path / RESULTS_FILE, "a") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))

    def write_summary(self, summary: dict[str, Any]) -> None:
        (self.path / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, also when this thread already runs an
    event loop (then in a helper thread with its own loop)."""
    try:
        asyncio.get_running_loop()
        in_a_loop = True
    except RuntimeError:
        in_a_loop = False
    if not in_a_loop:  # (outside the except block: errors of `coro` must not get its RuntimeError as context)
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
    thread = threading.Thread(target=target, name="eval-runner")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


