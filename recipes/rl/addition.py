"""RL on addition: the tiny model answers ``a+b`` and gets reward 1 for the exact sum.

    cookbook run rl/addition load_checkpoint_path=local://<run>/weights/step_000300
    cookbook run rl/addition loss_fn=ppo max_steps=100

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
from cookbook.recipe_cli import run_recipe
from cookbook.rl.task_env import TaskRLDataset
from cookbook.rl.train import RLConfig, train
from cookbook.tasks import AdditionTask


@chz.chz
class Config(RLConfig):
    renderer: str = chz.field(default="tiny", validator=known_renderer)
    digits: int = 2
    n_train: int = 8000
    n_test: int = 200
    groups_per_batch: int = 32  # problems per step
    group_size: int = 8  # answers per problem
    format_reward: float = 0.0  # an answer that does not parse as a number (< 0 teaches the format first)
    max_tokens: int = 6  # up to 3 digits and the end-of-turn token, with room to spare
    learning_rate: float = 1e-4  # 2e-4 and 3e-4 made the policy collapse (reward fell) in measurements
    grad_clip_norm: float = 1.0
    eval_every: int = 25
    log_path: str = "runs/rl_addition"


def main(config: Config) -> dict:
    started = time.monotonic()
    renderer = renderer_for(config.base_model, config.renderer)
    task = AdditionTask(digits=config.digits)
    train_problems, test_problems = task.held_out_split(config.n_train, config.n_test, seed=config.seed)
    dataset = TaskRLDataset(task, train_problems, renderer, groups_per_batch=config.groups_per_batch,
                            group_size=config.group_size, format_reward=config.format_reward, seed=config.seed)
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
