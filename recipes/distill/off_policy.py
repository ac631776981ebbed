"""Off-policy top-K distillation on addition: a weak tiny student learns a trained teacher's next-token
distributions on a fixed dataset.

    cookbook quickstart save_every=100 log_path=runs/qs      # teacher (final) and students (step_*)
    cookbook run distill/off_policy teacher_path=local://<run>/sampler_weights/final \\
        load_checkpoint_path=local://<run>/weights/step_000300

The dataset is the quickstart's training conversations (``a+b`` -> the sum). Before training the
teacher scores each of them once (``cookbook.distill.topk.teacher_topk_data``: its ``topk`` most
likely next tokens at every answer position, renormalised); the student then trains with the SFT
loop and the built-in ``cross_entropy`` loss on those ``[N, K]`` targets and weights, so it learns
the teacher's distribution rather than the reference answers (which it never sees). Held-out greedy
accuracy is measured for the teacher once and for the student before, during (``addition/accuracy``
every ``eval_every`` steps) and after; ``summary.json`` holds them. Every SFT option applies
(``loss_normalization``, ``pack_length``, ...).

Measured: README "Distillation".
"""

from __future__ import annotations

import time

import chz

from cookbook.completers import known_renderer, renderer_for, sampling_client
from cookbook.config import make_service
from cookbook.distill.topk import teacher_topk_data
from cookbook.distill.types import Teacher
from cookbook.errors import ConfigError
from cookbook.hooks import accuracy_hook
from cookbook.lr_schedules import ScheduleName
from cookbook.recipe_cli import run_recipe
from cookbook.supervised.data import conversations_to_data
from cookbook.supervised.train import TrainConfig, train
from cookbook.tasks import AdditionTask


@chz.chz
class Config(TrainConfig):
    teacher_model: str | None = None  # the teacher: a base model by name (the student's tokenizer) ...
    teacher_path: str | None = None  # ... or a checkpoint's weights
    topk: int = 8  # teacher alternatives per position
    distill_temperature: float = 1.0  # the teacher's logprobs are divided by it before renormalising
    renderer: str = chz.field(default="tiny", validator=known_renderer)
    digits: int = 2
    n_train: int = 9600  # one epoch at batch 64 = 150 steps
    n_test: int = 200
    batch_size: int | None = 64
    learning_rate: float = 1e-3
    lr_schedule: ScheduleName = "linear"
    grad_clip_norm: float = 1.0
    eval_every: int = 50
    log_path: str = "runs/distill_off_policy"


def check(config: Config) -> Teacher:
    if config.base_model == "tiny" and not (config.teacher_path and config.load_checkpoint_path):
        raise ConfigError("on tiny, set teacher_path (a trained checkpoint) and load_checkpoint_path (a weaker one "
                          "to start the student from): `cookbook quickstart save_every=100 log_path=runs/qs` makes "
                          "both; runs/qs/checkpoints.jsonl lists them (teacher: final's sampler_path; student: an "
                          "early step's state_path)")
    if config.topk < 1:
        raise ConfigError(f"topk must be >= 1, got {config.topk}")
    return Teacher(base_model=config.teacher_model, path=config.teacher_path)


def main(config: Config) -> dict:
    started = time.monotonic()
    teacher_spec = check(config)
    renderer = renderer_for(config.base_model, config.renderer)
    task = AdditionTask(digits=config.digits)
    train_problems, test_problems = task.held_out_split(config.n_train, config.n_test, seed=config.seed)
    data = conversations_to_data([task.conversation(p) for p in train_problems], renderer, "last_assistant_message")
    service = make_service(config)
    teacher = teacher_spec.sampling_client(service)
    accuracy = accuracy_hook(task, test_problems, renderer, max_tokens=8)
    teacher_accuracy = accuracy(teacher)["accuracy"]
    before = accuracy(sampling_client(service, config.base_model, config.load_checkpoint_path))["accuracy"]
    print(f"held-out accuracy: teacher {teacher_accuracy:.1%}, student {before:.1%} at the start "
          f"({len(test_problems)} problems)")

    scored = time.monotonic()
    distill_data = teacher_topk_data(teacher, data, config.topk, temperature=config.distill_temperature)
    teacher_seconds = time.monotonic() - scored
    print(f"teacher top-{config.topk} on {len(distill_data)} conversations in {teacher_seconds:.0f}s")

    result = train(config, distill_data, eval_hooks={"addition": accuracy}, service=service)
    summary = result.write_summary({
        "teacher_accuracy": teacher_accuracy, "accuracy_before": before,
        "accuracy_after": result.metrics[-1]["addition/accuracy"], "teacher": str(teacher_spec),
        "start_checkpoint": config.load_checkpoint_path, "topk": config.topk,
        "teacher_seconds": round(teacher_seconds, 1)}, started=started)
    print(f"student's held-out accuracy {before:.1%} -> {summary['accuracy_after']:.1%} (teacher "
          f"{teacher_accuracy:.1%}) after {result.steps} steps in {summary['seconds']:.0f}s; run directory: "
          f"{config.log_path}")
    return summary


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="distill"))
