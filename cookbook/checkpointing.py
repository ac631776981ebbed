"""Resumable training runs: the training client a run starts or resumes with, and its checkpoints.

Every loop resumes the same way (through :mod:`cookbook.run`): the last record with a
``state_path`` in the run directory's ``checkpoints.jsonl`` is loaded with its optimizer state (so
the continued run ends with the same weights as an uninterrupted one), metrics of the steps that
will run again are dropped, and a run with a ``final`` checkpoint is not trained again. A
checkpoint that cannot be loaded is dropped with a warning and the one before it is used
(:func:`load_last`).

May import ``cookbook.primitives`` and ``cookbook.run_dir``.
"""

from __future__ import annotations

from typing import Protocol

import tinker

from cookbook.errors import UserError, first_line
from cookbook.primitives import ServiceClient, TrainingClient, ready
from cookbook.run_dir import CheckpointRecord, RunDir

# What loading a damaged or missing checkpoint raises: the local backend's user errors
# (CheckpointNotFoundError, CheckpointCorruptError), the hosted service's failed requests.
LOAD_ERRORS = (UserError, tinker.RequestFailedError, tinker.NotFoundError, tinker.BadRequestError)


class StartSettings(Protocol):
    """The config fields a run starts from (``cookbook.config.LoopConfig`` has them)."""

    @property
    def base_model(self) -> str: ...

    @property
    def lora_rank(self) -> int: ...

    @property
    def seed(self) -> int: ...

    @property
    def load_checkpoint_path(self) -> str | None: ...  # start from these weights (fresh optimizer), not a new adapter


def start_or_resume(run: RunDir, service: ServiceClient, config: StartSettings) -> tuple[TrainingClient, int]:
    """(training client, steps already done): the last loadable checkpoint's weights and optimizer when
    the run has one; otherwise a fresh LoRA client, or ``config.load_checkpoint_path``'s weights with a
    fresh optimizer."""
    loaded = load_last(run, service, with_optimizer=True)
    if loaded is None:
        client: TrainingClient
        if config.load_checkpoint_path:
            client = ready(service.create_training_client_from_state(config.load_checkpoint_path))
        else:
            client = ready(service.create_lora_training_client(base_model=config.base_model, rank=config.lora_rank,
                                                               seed=config.seed))
        run.truncate_metrics(0)
        return client, 0
    client, last = loaded
    run.truncate_metrics(last.step)
    run.logger.info("resuming from %s at step %d", last.state_path, last.step)
    return client, last.step


def load_last(run: RunDir, service: ServiceClient, *, with_optimizer: bool
              ) -> tuple[TrainingClient, CheckpointRecord] | None:
    """A client of the newest checkpoint that loads (with its optimizer state if asked), and its record.
    Checkpoints that cannot be loaded (deleted, cut off by a crash mid-save) are dropped from the run's
    records with a warning, so the one before them is used; None when none is left."""
    create = (service.create_training_client_from_state_with_optimizer if with_optimizer
              else service.create_training_client_from_state)
    while (last := run.last_checkpoint()) is not None:
        assert last.state_path is not None
        try:
            return ready(create(last.state_path)), last
        except LOAD_ERRORS as exc:
            run.drop_checkpoint(last, f"{type(exc).__name__}: {first_line(str(exc))}")
    return None


def save_checkpoint(run: RunDir, training_client: TrainingClient, steps_done: int) -> CheckpointRecord:
    """A resumable checkpoint (weights and optimizer state) after ``steps_done`` steps."""
    name = f"step_{steps_done:06d}"
    record = CheckpointRecord(name, steps_done, training_client.save_state(name).result().path, None)
    run.record_checkpoint(record)
    return record


def save_final(run: RunDir, training_client: TrainingClient, steps_done: int) -> CheckpointRecord:
    """The ``final`` checkpoint: resumable state plus sampler weights; marks the run finished."""
    state = training_client.save_state("final").result().path
    sampler = training_client.save_weights_for_sampler("final").result().path
    record = CheckpointRecord("final", steps_done, state, sampler, final=True)
    run.record_checkpoint(record)
    return record
