"""The supervised-learning loop, written only against the Tinker primitives.

Per step: submit ``forward_backward`` and ``optim_step`` for step N, then wait for step N-1's
results (so the backend always has the next step queued). When hooks (test NLL, evals) are due or a
checkpoint is, the loop waits for the step it just submitted, so they see exactly the weights after
that step. Rerunning with the same ``log_path`` resumes from the last checkpoint (weights and
optimizer state) and gives the same final weights as an uninterrupted run.

Composes the shared layer: ``cookbook.config`` (run and optimizer settings), ``cookbook.hooks``,
``cookbook.checkpointing``; clients are typed by ``cookbook.primitives``. Imports no other loop.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import chz
from tinker import types

from cookbook import checkpointing
from cookbook.checkpointing import RunResult
from cookbook.config import OptimizerConfig, RunConfig, make_service
from cookbook.errors import ConfigError, DataError
from cookbook.hooks import Hook, Hooks, SamplingHookFn, nll_hook, weight_sum
from cookbook.metric_logger import MetricLogger
from cookbook.pipeline import Submitted, every, run_pipelined, step_metrics
from cookbook.primitives import ServiceClient
from cookbook.progress import StepProgress
from cookbook.run_dir import RunDir
from cookbook.supervised.data import EpochBatches


@chz.chz
class TrainConfig(RunConfig, OptimizerConfig):
    """Everything the loop needs that is not data (run and optimizer settings: ``cookbook.config``)."""

    base_model: str = "tiny"
    lora_rank: int = 32
    load_checkpoint_path: str | None = None  # start from these weights (fresh optimizer); resume wins over it
    batch_size: int | None = 32  # examples per step ...
    max_tokens_per_batch: int | None = None  # ... or a token budget per step (set batch_size=None)
    num_epochs: int = 1
    max_steps: int | None = None
    eval_every: int = 0  # test NLL and eval hooks every N steps (0: only at the end)
    save_every: int = 0  # resumable checkpoint every N steps (0: only at the end)
    log_path: str = "runs/sft"


def num_steps(config: TrainConfig, batches: EpochBatches) -> int:
    total = batches.steps(config.num_epochs)
    return min(total, config.max_steps) if config.max_steps is not None else total


def train(
    config: TrainConfig,
    train_data: Sequence[types.Datum],
    test_data: Sequence[types.Datum] = (),
    *,
    eval_hooks: Mapping[str, Hook | SamplingHookFn] | None = None,
    run_config: dict[str, Any] | None = None,
    service: ServiceClient | None = None,
) -> RunResult:
    """Train a LoRA adapter on ``train_data``; see the module docstring for the loop's shape.

    Args:
        test_data: held-out datums; their mean NLL is logged as ``test/nll`` with the hooks.
        eval_hooks: name -> hook (``cookbook.hooks``), run every ``eval_every`` steps and at the end.
        run_config: what is written to ``config.json`` (default: ``config``); a rerun continues the
            run only if this matches.
        service: a service client to use instead of making one from ``config.backend``.
    """
    if not train_data:
        raise DataError("no training data")
    run = RunDir(config.log_path, run_config or chz.asdict(config), config.if_exists)
    batches = EpochBatches([d.model_input.length for d in train_data], batch_size=config.batch_size,
                           max_tokens=config.max_tokens_per_batch, seed=config.seed)
    if batches.per_epoch == 0:
        raise ConfigError(f"batch_size {config.batch_size} is larger than the dataset ({len(train_data)} examples)")
    total = num_steps(config, batches)
    hooks = Hooks({**({"test": nll_hook(test_data)} if test_data else {}), **(eval_hooks or {})},
                  default_every=config.eval_every, total_steps=total)
    service = service or make_service(config)
    if run.is_finished():
        return checkpointing.finished(run, service, total)
    tc, start = checkpointing.start_or_resume(run, service, config)
    logger = MetricLogger(run, wandb_project=config.wandb_project, wandb_name=config.wandb_name, resume_step=start)
    last_finish = time.monotonic()

    def submit(step: int) -> Submitted:
        batch = [train_data[i] for i in batches[step]]
        adam = config.adam_params(step, total)
        return Submitted(step, adam, tc.forward_backward(batch, "cross_entropy"), tc.optim_step(adam),
                          sum(d.model_input.length for d in batch), weight_sum(batch))

    def finish(done: Submitted) -> None:
        nonlocal last_finish
        out, opt = done.fb.result(), done.opt.result()
        now = time.monotonic()
        row = {"train/loss": out.metrics["loss:sum"] / max(done.weight, 1e-9),
               **step_metrics(done, opt, elapsed=now - last_finish)}
        row.update(hooks.run(done.step, tc))
        logger.log(done.step, row)
        progress.update(done.step + 1, loss=row["train/loss"], tokens_per_s=row["tokens_per_s"])
        if every(done.step, config.save_every) and done.step != total - 1:
            checkpointing.save_checkpoint(run, tc, done.step + 1)
        last_finish = time.monotonic()  # hooks and checkpoints are not training time

    with StepProgress(total, start, "train", enabled=config.progress) as progress:
        run_pipelined(start, total, submit, finish,
                      wait_after=lambda step: bool(hooks.due(step)) or every(step, config.save_every))

    final = checkpointing.save_final(run, tc, total)
    logger.close()
    return RunResult(tc, total, final.state_path, final.sampler_path, run.metrics(), start)

