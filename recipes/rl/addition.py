"""RL on addition: the tiny model answers ``a+b`` and gets reward 1 for the exact sum.

    cookbook run rl/addition load_checkpoint_path=local://<run>/weights/step_000300
    cookbook run rl/addition loss_fn=ppo max_steps=100

A wrong answer still earns ``digit_credit`` (0.5) times the fraction of its digits that are right
(``AdditionTask``): from a weak start most answers are wrong and most groups of exact-match rewards
are all 0, while digit credit gives almost every group a signal. ``digit_credit=0`` is exact match
only. Held-out accuracy is always exact match. The learning rate starts at 4e-4 and decays linearly
to 0 over the run (``max_steps`` when given): the early steps move fast, the late ones settle.

Meant to continue from a partly trained SFT checkpoint (e.g. a ``cookbook quickstart`` run stopped
early): from random weights no answer is ever right and no group has a reward signal. Held-out
greedy accuracy (problems never trained on) is logged as ``addition/accuracy`` every
``eval_every`` steps and written with the start and end values to ``summary.json``.
"""

from __future__ import annotations

import time

import chz

from cookbook.completers import known_renderer, renderer_for, sampling_client
from cookbook.config import make_service
from cookbook.hooks import accuracy_hook
from cookbook.lr_schedules import ScheduleName
from cookbook.recipe_cli import run_recipe
from cookbook.rl.task_env import TaskRLDataset
from cookbook.rl.train import RLConfig, train
from cookbook.tasks import AdditionTask


def _digit_credit(config: object, attr: str) -> None:
    """chz validator: ``AdditionTask`` refuses a credit outside [0, 1)."""
    AdditionTask(digit_credit=getattr(config, attr))


@chz.chz
class Config(RLConfig):
    renderer: str = chz.field(default="tiny", validator=known_renderer)
    digits: int = 2
    n_train: int = 8000
    n_test: int = 200
    groups_per_batch: int = 64  # problems per step (64 learned faster than 32 per step in measurements)
    num_epochs: int = 2  # passes over n_train (2 x 8000 / 64 = 250 steps)
    group_size: int = 8  # answers per problem
    format_reward: float = 0.0  # an answer that does not parse as a number (< 0 teaches the format first)
    # reward for a wrong answer: this x its fraction of right digits (0: exact match only; evals stay exact)
    digit_credit: float = chz.field(default=0.5, validator=_digit_credit)
    max_tokens: int = 6  # up to 3 digits and the end-of-turn token, with room to spare
    learning_rate: float = 4e-4  # peak of the linear decay (constant 4e-4 collapsed the policy in measurements)
    lr_schedule: ScheduleName = "linear"  # decays to 0 over the run: late steps stop undoing what was learned
    grad_clip_norm: float = 1.0
    eval_every: int = 25
    log_path: str = "runs/rl_addition"


def main(config: Config) -> dict:
    started = time.monotonic()
    renderer = renderer_for(config.base_model, config.renderer)
    task = AdditionTask(digits=config.digits)
    train_problems, test_problems = task.held_out_split(config.n_train, config.n_test, seed=config.seed)
    shaped = AdditionTask(digits=config.digits, digit_credit=config.digit_credit)
    dataset = TaskRLDataset(shaped, train_problems, renderer, groups_per_batch=config.groups_per_batch,
                            group_size=config.group_size, num_epochs=config.num_epochs,
                            format_reward=config.format_reward, seed=config.seed)
    evaluate = accuracy_hook(task, test_problems, renderer, max_tokens=config.max_tokens)
    service = make_service(config)
    before = evaluate(sampling_client(service, config.base_model, config.load_checkpoint_path))["accuracy"]
    print(f"held-out accuracy at the start: {before:.1%} ({len(test_problems)} problems)")
    result = train(config, dataset, eval_hooks={"addition": evaluate}, service=service)
    after = result.metrics[-1]["addition/accuracy"]
    summary = result.write_summary({"accuracy_before": before, "accuracy_after": after}, started=started)
    print(f"held-out accuracy: {before:.1%} -> {after:.1%} after {result.steps} steps in {summary['seconds']:.0f}s")
    return summary


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="rl"))
