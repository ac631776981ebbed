"""The run skeleton every training loop uses, so that a loop's ``train()`` holds only its own step.

    run = Run(config, total, hooks=eval_hooks, service=service, description="train",
              show={"train/loss": "loss {:.4f}"})
    if run.finished:
        return run.result
    with run:
        for step in run.steps():
            metrics = ...                      # the loop's step, with run.training_client
            run.end_step(step, metrics)
    return run.result

A :class:`Run` owns everything around the step, the same in every loop:

- the run directory (``cookbook.run_dir``) at ``config.log_path``, following ``if_exists``;
- the finished-run shortcut: a run that has its final checkpoint is not trained again
  (:attr:`Run.finished`; :attr:`Run.result` then holds that checkpoint and a client of its weights);
- start or resume (``cookbook.checkpointing``): :attr:`Run.training_client` and :attr:`Run.start`;
- after each step (:meth:`Run.end_step`): the hooks that are due (``cookbook.hooks``), the step's
  row in ``metrics.jsonl`` and wandb (``cookbook.metric_logger``), the progress line
  (``cookbook.progress``) and, every ``save_every`` steps, a resumable checkpoint;
- :meth:`Run.pipelined`: step N+1 submitted before step N is finished (``cookbook.pipeline``),
  except after a step that hooks or a checkpoint must see;
- leaving the ``with`` block: the final checkpoint and :attr:`Run.result` (a :class:`RunResult`,
  which carries its run directory). On an exception the progress line and the logger are closed
  and nothing is saved, so rerunning with the same ``log_path`` resumes from the last checkpoint.

The config is a :class:`cookbook.config.LoopConfig`: ``max_steps``, ``eval_every``, ``save_every``
and the start settings mean the same in every loop. Recipes name the runs that serve another one
(an SFT warm-up, a teacher, a reward model) with :func:`sub_run` / :func:`sub_run_path`, and write
``summary.json`` with :meth:`RunResult.write_summary` (or :func:`write_summary`).

May import the shared layer: ``config``, ``checkpointing``, ``hooks``, ``metric_logger``,
``pipeline``, ``primitives``, ``progress``, ``run_dir``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import chz

from cookbook import checkpointing
from cookbook.config import LoopConfig, make_service
from cookbook.hooks import Hook, Hooks, SamplingHookFn
from cookbook.metric_logger import MetricLogger
from cookbook.pipeline import every, run_pipelined
from cookbook.primitives import ServiceClient, TrainingClient
from cookbook.progress import StepProgress
from cookbook.run_dir import RunDir

S = TypeVar("S")
C = TypeVar("C", bound=LoopConfig)

SUMMARY_FILE = "summary.json"
# What a sub-run shares with the run it serves (the rest of its config is its own).
SHARED_SETTINGS = ("base_model", "lora_rank", "seed", "backend", "base_url", "if_exists", "progress")


@dataclass
class RunResult:
    """What every training loop returns."""

    training_client: TrainingClient | None  # holds the final weights
    steps: int
    final_state_path: str | None
    final_sampler_path: str | None
    metrics: list[dict[str, Any]]  # the whole run's metrics.jsonl, resumed steps included
    resumed_from: int  # steps that were already done when this call started
    run_dir: Path

    def write_summary(self, values: Mapping[str, Any], *, started: float | None = None) -> dict[str, Any]:
        """``values`` plus the run's ``steps``, ``checkpoint``, ``sampler_checkpoint``, ``log_path`` (and
        ``seconds`` since ``started``, a ``time.monotonic()``), written to the run's ``summary.json``."""
        summary = dict(values)
        if started is not None:
            summary.setdefault("seconds", round(time.monotonic() - started, 1))
        for key, value in (("steps", self.steps), ("checkpoint", self.final_state_path),
                           ("sampler_checkpoint", self.final_sampler_path), ("log_path", str(self.run_dir))):
            summary.setdefault(key, value)
        return write_summary(self.run_dir, summary)


def write_summary(directory: str | Path, summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` as ``<directory>/summary.json`` (a recipe's numbers before and after); returns it."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def sub_run_path(log_path: str, name: str, *, nested: bool = False) -> str:
    """The run directory of a run named ``name`` that serves the run at ``log_path``: ``<log_path>_<name>``
    beside it (so that overwriting one never deletes the other), or ``<log_path>/<name>`` with ``nested``
    (a recipe whose ``log_path`` holds only its stages and its summary)."""
    return f"{log_path}/{name}" if nested else f"{log_path}_{name}"


def sub_run(parent: LoopConfig, config_cls: type[C], name: str, *, nested: bool = False, **fields: Any) -> C:
    """The config of a run that serves ``parent``'s (an SFT warm-up, a teacher, a reward model): its
    directory is :func:`sub_run_path`, it shares ``parent``'s model, LoRA rank and run settings
    (``SHARED_SETTINGS``), and ``fields`` set the rest."""
    shared = {key: getattr(parent, key) for key in SHARED_SETTINGS}
    return config_cls(**{**shared, "log_path": sub_run_path(parent.log_path, name, nested=nested), **fields})


class Run:
    """One training run around a loop's step; see the module docstring.

    Args:
        total: the run's number of steps.
        hooks: name -> hook (``cookbook.hooks``), run every ``eval_every`` steps and after the last.
        service: a service client to use instead of making one from ``config.backend``.
        run_config: what is written to ``config.json`` (default: ``config``); a rerun continues the
            run only if this matches.
        description, show: the progress line's label, and the metrics it shows (metric key ->
            format, e.g. ``{"train/loss": "loss {:.4f}"}``).
        timed: log ``time/hooks_s`` and ``time/step_s`` (the time since the previous step ended).
    """

    training_client: TrainingClient
    start: int

    def __init__(self, config: LoopConfig, total: int, *, hooks: Mapping[str, Hook | SamplingHookFn] | None = None,
                 service: ServiceClient | None = None, run_config: dict[str, Any] | None = None,
                 description: str = "train", show: Mapping[str, str] | None = None, timed: bool = False) -> None:
        self.config, self.total, self.description, self.timed = config, total, description, timed
        self.show = dict(show or {})
        self.dir = RunDir(config.log_path, run_config or chz.asdict(config), config.if_exists)
        self.hooks = Hooks(dict(hooks or {}), default_every=config.eval_every, total_steps=total)
        self.service = service or make_service(config)
        self._result: RunResult | None = self._finished_result() if self.dir.is_finished() else None

    @property
    def finished(self) -> bool:
        """The run has its final checkpoint (now, or already when it was opened)."""
        return self._result is not None

    @property
    def result(self) -> RunResult:
        if self._result is None:
            raise RuntimeError("the run has no result until its with-block ends without an exception")
        return self._result

    def _finished_result(self) -> RunResult | None:
        """The result of a run that already finished: nothing is trained again; a client of its last weights.
        None when its final checkpoint turns out not to load (it is dropped: the run resumes before it)."""
        loaded = checkpointing.load_last(self.dir, self.service, with_optimizer=False)
        if not self.dir.is_finished():
            return None
        self.dir.logger.info("run already finished; nothing to do")
        client = loaded[0] if loaded else None
        final = [r for r in self.dir.checkpoints() if r.final][-1]
        return RunResult(client, self.total, final.state_path, final.sampler_path, self.dir.metrics(), self.total,
                         self.dir.path)

    # --- the with-block -----------------------------------------------------------------------
    def __enter__(self) -> Run:
        if self.finished:
            raise RuntimeError(f"{self.dir.path} holds a finished run; return run.result instead of training")
        self.training_client, self.start = checkpointing.start_or_resume(self.dir, self.service, self.config)
        self._logger = MetricLogger(self.dir, wandb_project=self.config.wandb_project,
                                    wandb_name=self.config.wandb_name, resume_step=self.start)
        self._progress = StepProgress(self.total, self.start, self.description, enabled=self.config.progress,
                                      fields={f"v{i}": "{}" for i in range(len(self.show))})
        self._progress.__enter__()
        self._last_end = time.monotonic()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._progress.__exit__(exc_type, exc, tb)
            if exc_type is None:
                final = checkpointing.save_final(self.dir, self.training_client, self.total)
                self._result = RunResult(self.training_client, self.total, final.state_path, final.sampler_path,
                                         self.dir.metrics(), self.start, self.dir.path)
        finally:
            self._logger.close()

    # --- steps --------------------------------------------------------------------------------
    def steps(self) -> range:
        """The steps still to run: ``start .. total - 1``."""
        return range(self.start, self.total)

    def pipelined(self, submit: Callable[[int], S], finish: Callable[[S], None]) -> None:
        """The steps still to run, each submitted before the previous one is finished; a step after which
        hooks or a checkpoint are due is finished before the next is submitted, so they see its weights."""
        run_pipelined(self.start, self.total, submit, finish,
                      wait_after=lambda step: bool(self.hooks.due(step)) or every(step, self.config.save_every))

    def step_seconds(self) -> float:
        """Seconds since the previous step ended (hooks and checkpoints excluded)."""
        return time.monotonic() - self._last_end

    def end_step(self, step: int, metrics: dict[str, Any]) -> None:
        """After the loop's ``step``: the hooks due (their metrics join ``metrics``), the metrics row, the
        progress line, and a resumable checkpoint every ``save_every`` steps (the final one comes at the end)."""
        hooks_started = time.monotonic()
        metrics.update(self.hooks.run(step, self.training_client))
        if self.timed:
            now = time.monotonic()
            metrics.update({"time/hooks_s": now - hooks_started, "time/step_s": now - self._last_end})
        self._logger.log(step, metrics)
        self._progress.update(step + 1, **{f"v{i}": fmt.format(metrics.get(key, float("nan")))
                                           for i, (key, fmt) in enumerate(self.show.items())})
        if every(step, self.config.save_every) and step != self.total - 1:
            checkpointing.save_checkpoint(self.dir, self.training_client, step + 1)
        self._last_end = time.monotonic()
