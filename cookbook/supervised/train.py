"""The supervised-learning loop, written only against the Tinker primitives.

Per step: submit ``forward_backward`` and ``optim_step`` for step N, then wait for step N-1's
results (so the backend always has the next step queued). At evaluation / checkpoint boundaries
the loop waits for the step it just submitted, so evals and checkpoints see exactly the weights
after that step. Rerunning with the same ``log_path`` resumes from the last checkpoint (weights
and optimizer state) and gives the same final weights as an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import chz
from tinker import types

from cookbook.backend import service_client
from cookbook.lr_schedules import ScheduleName, lr_at
from cookbook.metric_logger import MetricLogger
from cookbook.progress import StepProgress
from cookbook.run_dir import CheckpointRecord, IfExists, RunDir
from cookbook.supervised.data import batch_indices

EvalHook = Callable[[Any], Mapping[str, float]]  # receives a sampling client, returns metrics


@chz.chz
class TrainConfig:
    """Everything the loop needs that is not data."""

    base_model: str = "tiny"
    lora_rank: int = 32
    seed: int = 0
    learning_rate: float = 1e-4
    lr_schedule: ScheduleName = "linear"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    batch_size: int | None = 32  # examples per step ...
    max_tokens_per_batch: int | None = None  # ... or a token budget per step (set batch_size=None)
    num_epochs: int = 1
    max_steps: int | None = None
    eval_every: int = 0  # test NLL and eval hooks every N steps (0: only at the end)
    save_every: int = 0  # resumable checkpoint every N steps (0: only at the end)
    log_path: str = "runs/sft"
    if_exists: IfExists = "resume"
    backend: str = "local"
    base_url: str | None = None
    wandb_project: str | None = None
    wandb_name: str | None = None
    progress: bool = True


@dataclass
class TrainResult:
    training_client: Any
    steps: int
    final_state_path: str | None
    final_sampler_path: str | None
    metrics: list[dict[str, Any]]
    resumed_from: int


def make_service(config: TrainConfig) -> Any:
    kwargs = {"base_url": config.base_url} if config.base_url else {}
    return service_client(config.backend, **kwargs)


def _ready(x: Any) -> Any:
    """Accept both client styles: the local backend returns clients, the SDK futures of clients."""
    return x.result()


def num_steps(config: TrainConfig, n_batches_per_epoch: int) -> int:
    total = n_batches_per_epoch * config.num_epochs
    return min(total, config.max_steps) if config.max_steps is not None else total


def weight_sum(data: Sequence[types.Datum]) -> float:
    """Total loss weight of some datums (the number of trained tokens for 0/1 weights)."""
    return float(sum(d.loss_fn_inputs["weights"].to_numpy().sum() for d in data))


def test_nll(training_client: Any, data: Sequence[types.Datum], batch_size: int = 64) -> float:
    """Mean negative log-likelihood per weighted token under the current weights."""
    futures = [training_client.forward(list(data[i: i + batch_size]), "cross_entropy")
               for i in range(0, len(data), batch_size)]
    loss = sum(f.result().metrics["loss:sum"] for f in futures)
    return loss / max(weight_sum(data), 1e-9)


def train(
    config: TrainConfig,
    train_data: Sequence[types.Datum],
    test_data: Sequence[types.Datum] = (),
    *,
    eval_hooks: Mapping[str, EvalHook] | None = None,
    run_config: dict[str, Any] | None = None,
    service: Any = None,
) -> TrainResult:
    """Train a LoRA adapter on ``train_data``; see the module docstring for the loop's shape.

    Args:
        run_config: what is written to ``config.json`` (default: ``config``); a rerun continues the
            run only if this matches.
        eval_hooks: name -> hook(sampling_client) -> metrics, run with test NLL every ``eval_every``.
        service: a service client to use instead of making one from ``config.backend``.
    """
    if not train_data:
        raise ValueError("no training data")
    run = RunDir(config.log_path, run_config or chz.asdict(config), config.if_exists)
    lengths = [d.model_input.length for d in train_data]
    per_epoch = len(batch_indices(lengths, batch_size=config.batch_size, max_tokens=config.max_tokens_per_batch,
                                  seed=config.seed, epoch=0))
    if per_epoch == 0:
        raise ValueError(f"batch_size {config.batch_size} is larger than the dataset ({len(train_data)} examples)")
    total = num_steps(config, per_epoch)
    service = service or make_service(config)

    last = run.last_checkpoint()
    if run.is_finished():
        run.logger.info("run already finished; nothing to do")
        tc = _ready(service.create_training_client_from_state(last.state_path)) if last else None
        final = [r for r in run.checkpoints() if r.final][-1]
        return TrainResult(tc, total, final.state_path, final.sampler_path, run.metrics(), total)
    if last is not None:
        tc = _ready(service.create_training_client_from_state_with_optimizer(last.state_path))
        start = last.step
        run.truncate_metrics(start)
        run.logger.info("resuming from %s at step %d", last.state_path, start)
    else:
        tc = _ready(service.create_lora_training_client(base_model=config.base_model, rank=config.lora_rank,
                                                         seed=config.seed))
        start = 0
        run.truncate_metrics(0)
    logger = MetricLogger(run, wandb_project=config.wandb_project, wandb_name=config.wandb_name, resume_step=start)
    epoch_batches: dict[int, list[list[int]]] = {}

    def batch_for(step: int) -> list[types.Datum]:
        epoch, index = divmod(step, per_epoch)
        if epoch not in epoch_batches:
            epoch_batches.clear()
            epoch_batches[epoch] = batch_indices(lengths, batch_size=config.batch_size,
                                                 max_tokens=config.max_tokens_per_batch, seed=config.seed, epoch=epoch)
        return [train_data[i] for i in epoch_batches[epoch][index]]

    def is_boundary(step: int, every: int) -> bool:
        return every > 0 and (step + 1) % every == 0

    def submit(step: int) -> dict[str, Any]:
        batch = batch_for(step)
        lr = lr_at(step, base_lr=config.learning_rate, total_steps=total, schedule=config.lr_schedule,
                   warmup_steps=config.warmup_steps, min_lr_ratio=config.min_lr_ratio)
        adam = types.AdamParams(learning_rate=lr, beta1=config.beta1, beta2=config.beta2,
                                weight_decay=config.weight_decay, grad_clip_norm=config.grad_clip_norm)
        return dict(step=step, lr=lr, fb=tc.forward_backward(batch, "cross_entropy"), opt=tc.optim_step(adam),
                    tokens=sum(d.model_input.length for d in batch),
                    weight=weight_sum(batch))

    clock = {"last": time.monotonic()}

    def finish(pending: dict[str, Any], progress: StepProgress) -> None:
        step = pending["step"]
        out, opt = pending["fb"].result(), pending["opt"].result()
        now = time.monotonic()
        elapsed, clock["last"] = now - clock["last"], now
        row = {"train/loss": out.metrics["loss:sum"] / max(pending["weight"], 1e-9), "learning_rate": pending["lr"],
               "tokens": pending["tokens"], "tokens_per_s": pending["tokens"] / max(elapsed, 1e-9),
               "step_time_s": elapsed}
        if opt is not None and opt.metrics:
            row.update({f"optim/{k.split(':')[0]}": v for k, v in opt.metrics.items() if k.startswith("grad_norm")})
        last_step = step == total - 1
        if is_boundary(step, config.eval_every) or last_step:
            row.update(evaluate(tc, test_data, eval_hooks))
        logger.log(step, row)
        progress.update(step + 1, loss=row["train/loss"], tokens_per_s=row["tokens_per_s"])
        if is_boundary(step, config.save_every) and not last_step:
            path = tc.save_state(f"step_{step + 1:06d}").result().path
            run.record_checkpoint(CheckpointRecord(f"step_{step + 1:06d}", step + 1, path, None))
        clock["last"] = time.monotonic()  # evals and checkpoints are not training time

    with StepProgress(total, start, "train", enabled=config.progress) as progress:
        pending = None
        for step in range(start, total):
            current = submit(step)
            if pending is not None:
                finish(pending, progress)
            pending = current
            if is_boundary(step, config.eval_every) or is_boundary(step, config.save_every):
                finish(pending, progress)
                pending = None
        if pending is not None:
            finish(pending, progress)

    state = tc.save_state("final").result().path
    sampler = tc.save_weights_for_sampler("final").result().path
    run.record_checkpoint(CheckpointRecord("final", total, state, sampler, final=True))
    logger.close()
    return TrainResult(tc, total, state, sampler, run.metrics(), start)


def evaluate(training_client: Any, test_data: Sequence[types.Datum],
             eval_hooks: Mapping[str, EvalHook] | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if test_data:
        metrics["test/nll"] = test_nll(training_client, test_data)
    if eval_hooks:
        sampler = _ready(training_client.save_weights_and_get_sampling_client())
        for name, hook in eval_hooks.items():
            metrics.update({f"{name}/{k}": float(v) for k, v in hook(sampler).items()})
    return metrics
