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

import os
from pathlib import Path

import chz
from tinker import types

from cookbook.backend import BackendName, service_client
from cookbook.errors import ConfigError
from cookbook.lr_schedules import ScheduleName, lr_at
from cookbook.primitives import ServiceClient
from cookbook.run_dir import IfExists

# Numeric options and the values they take, checked when a config is made (so on the command line,
# before a run directory is written or a model loaded), in every config that has the option, nested
# sections included (``data.max_length``): name -> (lowest, highest, is the lowest excluded). None: no
# bound. Any float option that is NaN is refused too, named or not.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    # the run and the optimizer
    "lora_rank": (1, None, False), "max_steps": (1, None, False), "eval_every": (0, None, False),
    "save_every": (0, None, False), "learning_rate": (0, None, False), "warmup_steps": (0, None, False),
    "min_lr_ratio": (0, 1, False), "weight_decay": (0, None, False), "grad_clip_norm": (0, None, False),
    "beta1": (0, 1, False), "beta2": (0, 1, False),
    # data and batches
    "batch_size": (1, None, False), "max_tokens_per_batch": (1, None, False), "num_epochs": (1, None, False),
    "max_length": (1, None, False), "max_examples": (1, None, False), "n_train": (1, None, False),
    "n_test": (1, None, False), "digits": (1, None, False), "n_eval": (0, None, False),
    "test_size": (0, None, False), "pack_length": (0, None, False), "max_problems": (1, None, False),
    "n_show": (0, None, False),
    # evaluation (``evals.*``)
    "n": (1, None, False), "limit": (1, None, False),
    # preference
    "beta": (0, None, True), "sft_weight": (0, None, False), "simpo_gamma": (0, None, False),
    "desirable_weight": (0, None, False), "undesirable_weight": (0, None, False), "max_rounds": (1, None, False),
    "min_error": (1, None, False), "max_error": (1, None, False), "sft_steps": (0, None, False),
    # RL and distillation
    "groups_per_batch": (1, None, False), "group_size": (1, None, False), "max_tokens": (1, None, False),
    "temperature": (0, None, False), "max_turns": (1, None, False), "max_episode_tokens": (1, None, False),
    "num_substeps": (1, None, False), "kl_penalty_coef": (0, None, False), "log_groups": (0, None, False),
    "max_staleness": (0, None, False), "kl_samples": (1, None, False),
    "clip_low_threshold": (0, None, False), "clip_high_threshold": (0, None, False), "dro_beta": (0, None, False),
    "stable_reinforce_kl_coeff": (0, None, False), "dynamic_sampling_rounds": (0, None, False),
    "overlong_buffer": (0, 1, False), "overlong_penalty": (0, None, False), "reward_coef": (0, None, False),
    "env_step_timeout": (0, None, True), "rollout_timeout": (0, None, True),
    "topk": (1, None, False), "distill_temperature": (0, None, True),
    # the recipes' own stages (rl/rlhf, rl/guess_number, rl/tool_use, distill/prompt_distillation)
    "sft_batch_size": (1, None, False), "sft_learning_rate": (0, None, False), "rm_batch_size": (1, None, False),
    "rm_comparisons": (1, None, False), "rm_learning_rate": (0, None, False), "rm_max_steps": (1, None, False),
    "rm_min_error": (1, None, False), "rm_max_error": (1, None, False), "rm_policy_samples": (1, None, False),
    "warmup_learning_rate": (0, None, False), "warmup_steps_sft": (0, None, False), "high": (1, None, False),
    "max_guesses": (1, None, False), "turn_discount": (0, 1, False), "samples_per_query": (1, None, False),
    "teacher_batch_size": (1, None, False), "teacher_learning_rate": (0, None, False),
    "teacher_steps": (1, None, False),
}


def check_ranges(config: object, prefix: str = "") -> None:
    """:class:`ConfigError` naming the option (``data.max_length`` in a section) and what it takes, for a
    value outside ``RANGES`` or a NaN."""
    for name in chz.chz_fields(config):
        value = getattr(config, name)
        if chz.is_chz(value):
            check_ranges(value, f"{prefix}{name}.")
            continue
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value != value:
            raise ConfigError(f"{prefix}{name} must be a number, got nan")
        if name not in RANGES:
            continue
        low, high, open_low = RANGES[name]
        too_low = low is not None and (value <= low if open_low else value < low)
        if too_low or (high is not None and value > high):
            wanted = (f"> {low:g}" if open_low else f">= {low:g}") if high is None else f"in [{low:g}, {high:g}]"
            raise ConfigError(f"{prefix}{name} must be {wanted}, got {value!r}")


def check_log_path(log_path: str) -> None:
    """:class:`ConfigError` unless ``log_path`` can be a run directory: not a file, not under one, and
    writable (checked at the deepest part that exists)."""
    path = Path(log_path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"log_path {log_path} is a file, not a directory; choose another log_path")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"log_path {log_path} lies under {existing}, which is a file; choose another log_path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"log_path {log_path}: {existing} is not writable; choose another log_path")


@chz.chz
class RunConfig:
    """Run settings: the run directory, the backend, the seed, logging. Every loop's config inherits
    it, so every numeric option named in ``RANGES`` is checked when the config is made."""

    @chz.validate
    def _check_ranges(self) -> None:
        check_ranges(self)

    @chz.validate
    def _check_log_path(self) -> None:
        check_log_path(self.log_path)

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
