"""On-policy distillation, written only against the Tinker primitives.

The student samples, the teacher scores the student's own tokens, and the student learns to make
the tokens the teacher prefers likelier: the per-token reverse KL is an RL advantage.

Per step: a sampling client of the current weights rolls out the step's groups of episodes (all
concurrently, :mod:`cookbook.rl.rollouts`); the episodes become token sequences
(:mod:`cookbook.rl.data`); the teacher scores every sequence with ``compute_logprobs`` (one request
per sequence, all submitted before any is awaited); each action token's advantage is
``-kl_coef * (log p_student - log p_teacher)``, plus ``reward_coef`` times the episode's
group-centred reward when asked (observation tokens get 0); then ``forward_backward`` with the
``importance_sampling`` loss and ``optim_step``. At ``temperature`` 1 the sampled tokens'
logprobs are the student's, so ``distill/reverse_kl`` (the mean over action tokens of student
minus teacher logprob) estimates the per-token KL(student || teacher) on the student's own samples.

Resume, checkpoints and hooks are the shared ones, as in every loop; :func:`reverse_kl_hook`
measures the same reverse KL on fixed held-out prompts.

May import the shared layer, ``cookbook.rl`` (envs, rollouts, Datums, metrics; not its loop),
``cookbook.distill.types`` and ``renderers``; no other loop.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import chz
import numpy as np

from cookbook import checkpointing
from cookbook.checkpointing import RunResult
from cookbook.config import OptimizerConfig, RunConfig, make_service
from cookbook.distill.types import Teacher
from cookbook.hooks import Hook, Hooks, SamplingHookFn
from cookbook.metric_logger import MetricLogger
from cookbook.primitives import SamplingClient, ServiceClient, TrainingClient, ready
from cookbook.progress import StepProgress
from cookbook.rl import metrics as rl_metrics
from cookbook.rl.data import Sequence as RLSequence
from cookbook.rl.data import groups_to_sequences, logprob_gap
from cookbook.rl.episode_log import EpisodeLog
from cookbook.rl.rollouts import OnError, RolloutSettings, rollout_batch
from cookbook.rl.types import EnvGroupBuilder, RLDataset
from cookbook.run_dir import RunDir


@chz.chz
class OnPolicyDistillConfig(RunConfig, OptimizerConfig):
    """Everything the loop needs besides the prompts (run and optimizer settings: ``cookbook.config``)."""

    base_model: str = "tiny"  # the student's base model
    lora_rank: int = 32
    load_checkpoint_path: str | None = None  # the student's start weights (fresh optimizer); resume wins over it
    teacher_model: str | None = None  # the teacher: a base model by name (same tokenizer as the student) ...
    teacher_path: str | None = None  # ... or a checkpoint's weights
    kl_coef: float = 1.0  # advantage = -kl_coef * (log p_student - log p_teacher) per action token
    reward_coef: float = 0.0  # plus reward_coef * the episode's group-centred env reward
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"
    max_tokens: int = 64  # sampled tokens per turn
    temperature: float = 1.0  # 1: the sampled tokens' logprobs are the student's, as the KL needs
    max_turns: int = 16
    max_episode_tokens: int | None = None
    on_rollout_error: OnError = "drop"
    max_steps: int | None = None  # default: every batch of the dataset
    eval_every: int = 0
    save_every: int = 0
    log_groups: int = 2  # groups written to episodes.txt per step (0: none)
    log_path: str = "runs/distill"

    def teacher(self) -> Teacher:
        return Teacher(base_model=self.teacher_model, path=self.teacher_path)

    def rollout_settings(self) -> RolloutSettings:
        return RolloutSettings(max_tokens=self.max_tokens, temperature=self.temperature, max_turns=self.max_turns,
                               max_episode_tokens=self.max_episode_tokens, on_error=self.on_rollout_error)


def reverse_kl_metrics(sequences: Sequence[RLSequence], gaps: Sequence[np.ndarray]) -> dict[str, float]:
    """Means over the action tokens of ``sequences``: ``reverse_kl`` (student minus teacher logprob,
    ``gaps`` as :func:`cookbook.rl.data.logprob_gap` gives them), ``student_logprob``, ``teacher_logprob``."""
    masks = [s.target_mask() > 0 for s in sequences]
    if not any(m.any() for m in masks):
        return {}
    student = np.concatenate([s.target_logprobs()[m] for s, m in zip(sequences, masks)]).astype(np.float64)
    gap = np.concatenate([g[m] for g, m in zip(gaps, masks)]).astype(np.float64)
    return {"reverse_kl": float(gap.mean()), "student_logprob": float(student.mean()),
            "teacher_logprob": float((student - gap).mean())}


def distill_advantages(sequences: Sequence[RLSequence], teacher: SamplingClient, *, kl_coef: float,
                       reward_coef: float = 0.0) -> tuple[list[np.ndarray], dict[str, float]]:
    """Per target token of each sequence: ``-kl_coef * (student - teacher logprob)`` plus ``reward_coef``
    times the sequence's group-centred reward, on action tokens (0 on observation tokens); and
    :func:`reverse_kl_metrics`. One ``compute_logprobs`` request per sequence."""
    gaps = logprob_gap(teacher, sequences)
    advantages = [np.float32(-kl_coef) * g + np.float32(reward_coef * s.advantage) * s.target_mask()
                  for s, g in zip(sequences, gaps)]
    return advantages, reverse_kl_metrics(sequences, gaps)


def reverse_kl_hook(teacher: SamplingClient, builders: Sequence[EnvGroupBuilder], *, max_tokens: int = 64,
                    max_turns: int = 16, every: int | None = None) -> Hook:
    """A sampling hook: the student (the hook's client) answers ``builders``' envs at temperature 1 and
    ``teacher`` scores the answers; :func:`reverse_kl_metrics` and ``reward`` (the envs' mean reward).
    The same builders at every call keep the values of different steps comparable."""
    settings = RolloutSettings(max_tokens=max_tokens, temperature=1.0, max_turns=max_turns, on_error="fail")

    def run(student: SamplingClient) -> dict[str, float]:
        groups, _ = rollout_batch(builders, student, settings)
        sequences = groups_to_sequences(groups)
        metrics = reverse_kl_metrics(sequences, logprob_gap(teacher, sequences))
        metrics["reward"] = float(np.mean([r for g in groups for r in g.rewards]))
        return metrics
    return Hook(run, every=every)


def train(
    config: OnPolicyDistillConfig,
    dataset: RLDataset,
    *,
    eval_hooks: Mapping[str, Hook | SamplingHookFn] | None = None,
    run_config: dict[str, Any] | None = None,
    service: ServiceClient | None = None,
    teacher: SamplingClient | None = None,
) -> RunResult:
    """Distil the teacher (``config.teacher_model`` / ``teacher_path``, or a ready ``teacher`` client)
    into a LoRA student on ``dataset``'s prompts; see the module docstring."""
    teacher_spec = config.teacher() if teacher is None else None  # a bad teacher option fails before any work
    run = RunDir(config.log_path, run_config or chz.asdict(config), config.if_exists)
    total = min(len(dataset), config.max_steps) if config.max_steps is not None else len(dataset)
    hooks = Hooks(dict(eval_hooks or {}), default_every=config.eval_every, total_steps=total)
    service = service or make_service(config)
    if run.is_finished():
        return checkpointing.finished(run, service, total)
    tc, start = checkpointing.start_or_resume(run, service, config)
    teacher = teacher or teacher_spec.sampling_client(service)
    logger = MetricLogger(run, wandb_project=config.wandb_project, wandb_name=config.wandb_name, resume_step=start)
    episodes = EpisodeLog(run.path / "episodes.txt", tc.get_tokenizer(), config.log_groups)

    with StepProgress(total, start, "distill", enabled=config.progress,
                      fields={"kl": "reverse KL {}", "reward": "reward {}", "time": "{} s/step"}) as progress:
        for step in range(start, total):
            started = time.monotonic()
            student = ready(tc.save_weights_and_get_sampling_client())
            groups, dropped = rollout_batch(dataset.get_batch(step), student, config.rollout_settings())
            row = rl_metrics.rollout_metrics(groups, dropped)
            row["time/rollout_s"] = time.monotonic() - started
            episodes.write(step, groups)

            scored = time.monotonic()
            sequences = groups_to_sequences(groups)
            advantages, kl = distill_advantages(sequences, teacher, kl_coef=config.kl_coef,
                                                reward_coef=config.reward_coef)
            row.update({f"distill/{k}": v for k, v in kl.items()})
            row["time/teacher_s"] = time.monotonic() - scored

            trained = time.monotonic()
            row.update(_train_on(config, tc, sequences, advantages, step, total))
            row["time/train_s"] = time.monotonic() - trained

            hooks_started = time.monotonic()
            row.update(hooks.run(step, tc))
            row["time/hooks_s"] = time.monotonic() - hooks_started
            if config.save_every > 0 and (step + 1) % config.save_every == 0 and step != total - 1:
                checkpointing.save_checkpoint(run, tc, step + 1)
            row["time/step_s"] = time.monotonic() - started
            logger.log(step, row)
            progress.update(step + 1, kl=f"{row.get('distill/reverse_kl', float('nan')):.4f}",
                            reward=f"{row['reward/mean']:.3f}", time=f"{row['time/step_s']:.1f}")
    final = checkpointing.save_final(run, tc, total)
    logger.close()
    return RunResult(tc, total, final.state_path, final.sampler_path, run.metrics(), start)


def _train_on(config: OnPolicyDistillConfig, tc: TrainingClient, sequences: list[RLSequence],
              advantages: list[np.ndarray], step: int, total: int) -> dict[str, float]:
    """One ``forward_backward`` (importance sampling) + ``optim_step``; training metrics."""
    adam = config.adam_params(step, total)
    row: dict[str, float] = {"learning_rate": adam.learning_rate, "train/sequences": len(sequences),
                             "train/tokens": sum(len(s.tokens) for s in sequences)}
    if not sequences:  # every group was dropped
        return row
    fb = tc.forward_backward([s.to_datum(a) for s, a in zip(sequences, advantages)], "importance_sampling")
    opt = tc.optim_step(adam)
    out = fb.result()
    row.update(rl_metrics.logprob_diff(sequences, [o["logprobs"].to_numpy() for o in out.loss_fn_outputs]))
    row.update({"train/loss_sum": float(out.metrics["loss:sum"]),
                "optim/grad_norm": float(opt.result().metrics.get("grad_norm:mean", float("nan")))})
    return row
