"""Config sections every loop composes (chz), and what they make.

A loop's config inherits the sections, so their keys stay flat on the command line
(``learning_rate=...``, ``log_path=...``) and in ``config.json``::

    @chz.chz
    class TrainConfig(LoopConfig):
        batch_size: int = 32
        ...

- :class:`RunConfig`: where the run lives and what it runs on (``log_path``, ``if_exists``,
  ``backend``, ``base_url``, ``seed``, wandb, ``progress``); :func:`make_service` makes its
  service client.
- :class:`OptimizerConfig`: Adam and the learning-rate schedule; ``adam_params(step, total)``
  is the ``AdamParams`` of one step.
- :class:`LoopConfig`: both sections plus what every training loop has: the model and where its
  adapter starts (``base_model``, ``lora_rank``, ``load_checkpoint_path``) and the run's length and
  cadences (``max_steps``, ``eval_every``, ``save_every``). :mod:`cookbook.run` reads these.

Enumerated options are ``Literal`` types, so a bad value stops at parse time with the allowed values.
May import ``cookbook.backend`` (the factory), ``cookbook.lr_schedules``, ``cookbook.run_dir``.
"""

from __future__ import annotations

import chz
from tinker import types

from cookbook.backend import BackendName, service_client
from cookbook.lr_schedules import ScheduleName, lr_at
from cookbook.primitives import ServiceClient
from cookbook.run_dir import IfExists


@chz.chz
class RunConfig:
    """Run settings: the run directory, the backend, the seed, logging."""

    log_path: str = "runs/run"
    if_exists: IfExists = "resume"  # what to do when log_path already holds a run: resume, overwrite, refuse
    backend: BackendName = "local"  # local (in-process reference backend) or tinker (hosted / Tinker-compatible)
    base_url: str | None = None  # the Tinker-compatible server for backend=tinker
    seed: int = 0
    wandb_project: str | None = None
    wandb_name: str | None = None
    progress: bool = True


@chz.chz
class OptimizerConfig:
    """Adam (torch AdamW semantics) and the learning-rate schedule (``cookbook.lr_schedules``)."""

    learning_rate: float = 1e-4
    lr_schedule: ScheduleName = "linear"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0  # global-norm clipping; 0 = off
    beta1: float = 0.9
    beta2: float = 0.95

    def lr(self, step: int, total_steps: int) -> float:
        """The learning rate of ``step`` (0-based) in a run of ``total_steps``."""
        return lr_at(step, base_lr=self.learning_rate, total_steps=total_steps, schedule=self.lr_schedule,
                     warmup_steps=self.warmup_steps, min_lr_ratio=self.min_lr_ratio)

    def adam_params(self, step: int, total_steps: int) -> types.AdamParams:
        """The ``optim_step`` parameters of ``step``."""
        return types.AdamParams(learning_rate=self.lr(step, total_steps), beta1=self.beta1, beta2=self.beta2,
                                weight_decay=self.weight_decay, grad_clip_norm=self.grad_clip_norm)


@chz.chz
class LoopConfig(RunConfig, OptimizerConfig):
    """What every training loop's config has: the run and optimizer sections, the model, the length and cadences."""

    base_model: str = "tiny"
    lora_rank: int = 32
    load_checkpoint_path: str | None = None  # start from these weights (fresh optimizer); resume wins over it
    max_steps: int | None = None  # at most this many steps (None: the loop's full length)
    eval_every: int = 0  # hooks (test metrics, evals) every N steps (0: only after the last step)
    save_every: int = 0  # resumable checkpoint every N steps (0: only the final one)


def make_service(config: RunConfig) -> ServiceClient:
    """The service client of ``config.backend`` (with ``base_url`` when given)."""
    kwargs = {"base_url": config.base_url} if config.base_url else {}
    return service_client(config.backend, **kwargs)
