"""On-policy distillation: a configuration of the RL loop, with the teacher as the KL reference.

The student samples, the teacher scores the student's own tokens, and the student learns to make
the tokens the teacher prefers likelier. In the RL loop's terms (``cookbook.rl.train``): the
reference policy is the teacher, ``kl_penalty_coef`` (default 1) weighs the per-token gap, and
``reward_coef`` (default 0) the episode's group-centred env reward, so each action token's
advantage is ``-kl_penalty_coef * (log p_student - log p_teacher) + reward_coef * reward``
(:func:`distill_advantages`); groups whose rewards are all equal are kept (without rewards every
group is). The teacher scores each sequence with one ``compute_logprobs`` request, all submitted
before any is awaited. At ``temperature`` 1 the sampled tokens' logprobs are the student's, so
``distill/reverse_kl`` (the mean over action tokens of student minus teacher logprob) estimates the
per-token KL(student || teacher) on the student's own samples; ``distill/student_logprob``,
``distill/teacher_logprob`` and ``time/teacher_s`` are logged beside it.

Multi-teacher: ``teachers=source=path,source=path`` gives each prompt source its own teacher (the
source of a sequence is the name of the group builder that made it: a task's name, or
:class:`cookbook.distill.types.PromptDataset`'s ``sources``); ``teacher_path`` / ``teacher_model``
set as well is the teacher of every other source. Each sequence is scored by its source's teacher
only, all requests still in flight together.

:func:`train` is the RL loop's; :func:`reverse_kl_hook` measures the same reverse KL on fixed held-out
prompts. May import the shared layer, ``cookbook.rl`` (the one loop import the layout allows),
``cookbook.distill.types`` and ``renderers``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import chz
import numpy as np

from cookbook.distill.types import Teacher, parse_teachers
from cookbook.errors import ConfigError
from cookbook.hooks import Hook, SamplingHookFn
from cookbook.primitives import SamplingClient, ServiceClient
from cookbook.rl import train as rl
from cookbook.rl.data import Reference, groups_to_sequences, logprob_gap, sequence_sources, token_advantages
from cookbook.rl.data import Sequence as RLSequence
from cookbook.rl.rollouts import RolloutSettings, rollout_batch
from cookbook.rl.types import EnvGroupBuilder, RLDataset
from cookbook.run import RunResult


@chz.chz
class OnPolicyDistillConfig(rl.RLConfig):
    """The RL loop's config with a teacher as the KL reference (run, optimizer and RL settings as in RL)."""

    teacher_model: str | None = None  # the teacher: a base model by name (same tokenizer as the student) ...
    teacher_path: str | None = None  # ... or a checkpoint's weights
    teachers: str | None = None  # a teacher per prompt source: source=checkpoint_path,source=checkpoint_path,...
    kl_penalty_coef: float = 1.0  # advantage = -coef * (log p_student - log p_teacher) per action token ...
    reward_coef: float = 0.0  # ... plus reward_coef * the episode's group-centred env reward
    remove_constant_reward_groups: bool = False  # without rewards every group is constant: keep them
    temperature: float = 1.0  # 1: the sampled tokens' logprobs are the student's, as the KL needs
    log_path: str = "runs/distill"

    def teacher(self) -> Teacher:
        return Teacher(base_model=self.teacher_model, path=self.teacher_path)

    def teacher_by_source(self) -> dict[str, Teacher]:
        """The teacher of each prompt source (``*``: every source not named); one ``*`` entry without
        ``teachers``. A bad combination of options is a :class:`ConfigError`."""
        if not self.teachers:
            return {"*": self.teacher()}
        named = parse_teachers(self.teachers)
        if self.teacher_model is not None or self.teacher_path is not None:
            if "*" in named:
                raise ConfigError("teachers names a '*' teacher and teacher_path / teacher_model is set too: "
                                  "keep one of them")
            named["*"] = self.teacher()
        return named

    def kl_reference(self, service: ServiceClient) -> Reference:
        teachers = self.teacher_by_source()
        if list(teachers) == ["*"]:
            return teachers["*"].sampling_client(service)
        return {source: t.sampling_client(service) for source, t in teachers.items()}

    def reference_metrics(self, sequences: Sequence[RLSequence], gaps: Sequence[np.ndarray],
                          seconds: float) -> dict[str, float]:
        metrics = {f"distill/{k}": v for k, v in reverse_kl_metrics(sequences, gaps).items()}
        return {**metrics, "time/teacher_s": seconds}

    def progress_fields(self) -> dict[str, str]:
        return {"distill/reverse_kl": "reverse KL {:.4f}", **super().progress_fields()}


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


def distill_advantages(sequences: Sequence[RLSequence], teacher: Reference, *, kl_coef: float,
                       reward_coef: float = 0.0, sources: Sequence[str] | None = None
                       ) -> tuple[list[np.ndarray], dict[str, float]]:
    """What the RL loop's step computes for distillation: per target token of each sequence
    ``-kl_coef * (student - teacher logprob)`` plus ``reward_coef`` times the sequence's group-centred
    reward, on action tokens (0 on observation tokens); and :func:`reverse_kl_metrics`. One
    ``compute_logprobs`` request per sequence, to its source's teacher (``sources``) when there are several."""
    gaps = logprob_gap(teacher, sequences, sources)
    advantages = token_advantages(sequences, reward_coef=reward_coef, kl_coef=kl_coef, gaps=gaps)
    return advantages, reverse_kl_metrics(sequences, gaps)


def reverse_kl_hook(teacher: Reference, builders: Sequence[EnvGroupBuilder], *, max_tokens: int = 64,
                    max_turns: int = 16, every: int | None = None, seed: int = 0) -> Hook:
    """A sampling hook: the student (the hook's client) answers ``builders``' envs at temperature 1 and
    ``teacher`` scores the answers; :func:`reverse_kl_metrics` and ``reward`` (the envs' mean reward).
    The same builders and sampling seeds at every call keep the values of different steps comparable
    (and a rerun's equal to the first run's)."""
    settings = RolloutSettings(max_tokens=max_tokens, temperature=1.0, max_turns=max_turns, on_error="fail",
                               seed=seed)

    def run(student: SamplingClient) -> dict[str, float]:
        groups, _ = rollout_batch(builders, student, settings)
        sequences = groups_to_sequences(groups)
        metrics = reverse_kl_metrics(sequences, logprob_gap(teacher, sequences, sequence_sources(groups, sequences)))
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
    teacher: Reference | None = None,
) -> RunResult:
    """Distil the teacher (``config.teacher_model`` / ``teacher_path`` / ``teachers``, or a ready
    ``teacher`` client, or one per prompt source) into a LoRA student on ``dataset``'s prompts: the RL
    loop (:func:`cookbook.rl.train.train`) with the teacher as its reference."""
    if teacher is None:
        config.teacher_by_source()  # a bad teacher option fails before any work
    return rl.train(config, dataset, eval_hooks=eval_hooks, run_config=run_config, service=service,
                    reference=teacher)
