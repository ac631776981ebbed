"""The supervised-learning loop, written only against the Tinker primitives.

Per step: submit ``forward_backward`` and ``optim_step`` for step N, then wait for step N-1's
results (so the backend always has the next step queued). When hooks (test NLL, evals) are due or a
checkpoint is, the loop waits for the step it just submitted, so they see exactly the weights after
that step. Rerunning with the same ``log_path`` resumes from the last checkpoint (weights and
optimizer state) and gives the same final weights as an uninterrupted run.

Everything around the step (run directory, resume, hooks, logging, progress, checkpoints) is the
run skeleton's (``cookbook.run``); the config is a ``cookbook.config.LoopConfig``. Clients are
typed by ``cookbook.primitives``. Imports no other loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import chz
from tinker import types

from cookbook.config import LoopConfig
from cookbook.errors import ConfigError, DataError
from cookbook.hooks import Hook, SamplingHookFn, nll_hook, weight_sum
from cookbook.pipeline import Submitted, step_metrics
from cookbook.primitives import ServiceClient
from cookbook.run import Run, RunResult
from cookbook.supervised.data import EpochBatches
from cookbook.supervised.packing import LossNormalization, normalize_weights, pack_data


@chz.chz
class TrainConfig(LoopConfig):
    """Everything the loop needs that is not data (shared settings: ``cookbook.config.LoopConfig``)."""

    batch_size: int | None = 32  # examples per step ...
    max_tokens_per_batch: int | None = None  # ... or a token budget per step (set batch_size=None)
    num_epochs: int = 1
    # cross_entropy is a raw sum over tokens; this scales the weights so the step's loss is that sum
    # (sum; None is sum too), the mean over the batch's weighted tokens (token_mean) or the mean of each
    # sequence's per-token mean (sequence_mean). See cookbook.supervised.packing.
    loss_normalization: LossNormalization | None = None
    # > 0: pack each step's conversations into rows of at most this many tokens, with per-document
    # attention (positions restart, no token attends across conversations); None or 0: one row each
    pack_length: int | None = None
    log_path: str = "runs/sft"

    @chz.validate
    def _check_packing_backend(self) -> None:
        """Packed rows need a backend that reads ``document_ids``; the hosted service would run each row
        as one sequence, every conversation attending to the ones before it."""
        if self.pack_length and self.backend == "tinker" and not (self.base_url or os.environ.get("TINKER_BASE_URL")):
            raise ConfigError("pack_length needs backend=local or a cookbook serve-tinker server (base_url=...): "
                              "the hosted Tinker service does not know document_ids, so packed conversations "
                              "would attend to each other")


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
    """Train a LoRA adapter on ``train_data``; ``test_data``'s mean NLL is logged as ``test/nll`` with the
    ``eval_hooks`` (``run_config`` and ``service``: see :class:`cookbook.run.Run`)."""
    if not train_data:
        raise DataError("no training data")
    batches = EpochBatches([d.model_input.length for d in train_data], batch_size=config.batch_size,
                           max_tokens=config.max_tokens_per_batch, seed=config.seed)
    if batches.per_epoch == 0:
        raise ConfigError(f"batch_size {config.batch_size} is larger than the dataset ({len(train_data)} examples)")
    total = num_steps(config, batches)
    hooks = {**({"test": nll_hook(test_data)} if test_data else {}), **(eval_hooks or {})}
    run = Run(config, total, hooks=hooks, service=service, run_config=run_config, description="train",
              show={"train/loss": "loss {:.4f}", "tokens_per_s": "{:,.0f} tok/s"})
    if run.finished:
        return run.result

    def submit(step: int) -> Submitted:
        batch = normalize_weights([train_data[i] for i in batches[step]], config.loss_normalization or "sum")
        rows = pack_data(batch, config.pack_length) if config.pack_length else batch
        adam = config.adam_params(step, total)
        return Submitted(step, adam, run.training_client.forward_backward(rows, "cross_entropy"),
                         run.training_client.optim_step(adam), sum(d.model_input.length for d in batch),
                         weight_sum(batch))

    def finish(done: Submitted) -> None:
        out, opt = done.fb.result(), done.opt.result()
        run.end_step(done.step, {"train/loss": out.metrics["loss:sum"] / max(done.weight, 1e-9),
                                 **step_metrics(done, opt, elapsed=run.step_seconds())})

    with run:
        run.pipelined(submit, finish)
    return run.result
