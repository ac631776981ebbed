"""Quickstart: teach the embedded tiny model two-digit addition with LoRA, through the primitives.

    cookbook quickstart                  # or: python -m recipes.sl.quickstart
    cookbook quickstart max_steps=100 log_path=runs/qs2

Measures held-out exact-match accuracy (greedy sampling through a sampling client) before and
after training, shows a few answers, and writes the run directory with ``summary.json``. The
problems, their training conversations and the grade all come from ``cookbook.tasks.AdditionTask``.
"""

from __future__ import annotations

import time

import chz
from rich.console import Console
from rich.table import Table

from cookbook.completers import MessageCompleter, known_renderer, renderer_for, sampling_client
from cookbook.config import make_service
from cookbook.hooks import accuracy_hook
from cookbook.lr_schedules import ScheduleName
from cookbook.primitives import SamplingClient
from cookbook.recipe_cli import run_recipe
from cookbook.run_dir import IfExists
from cookbook.supervised.data import conversations_to_data
from cookbook.supervised.train import TrainConfig, train
from cookbook.tasks import AdditionTask, Problem
from renderers import Renderer


@chz.chz
class Config(TrainConfig):
    base_model: str = "tiny"
    renderer: str = chz.field(default="tiny", validator=known_renderer)
    digits: int = 2
    n_train: int = 40000  # one epoch at batch 64 = 625 steps
    n_test: int = 200
    n_show: int = 4
    lora_rank: int = 32
    learning_rate: float = 1e-3
    lr_schedule: ScheduleName = "linear"
    warmup_steps: int = 20
    grad_clip_norm: float = 1.0
    batch_size: int | None = 64
    max_steps: int | None = None
    log_path: str = "runs/quickstart"
    if_exists: IfExists = "overwrite"


def show(console: Console, title: str, sampler: SamplingClient, renderer: Renderer, problems: list[Problem]) -> None:
    table = Table(title=title)
    for column in ("problem", "model answer", "correct answer"):
        table.add_column(column)
    answers = MessageCompleter(sampler, renderer, max_tokens=8).complete_many([p.messages for p in problems])
    for problem, answer in zip(problems, answers):
        table.add_row(problem.messages[0]["content"], repr(answer.text), problem.reference)
    console.print(table)


def main(config: Config) -> dict:
    console = Console()
    started = time.monotonic()
    renderer = renderer_for(config.base_model, config.renderer)
    task = AdditionTask(digits=config.digits)
    train_problems, problems = task.held_out_split(config.n_train, config.n_test, seed=config.seed)
    train_data = conversations_to_data([task.conversation(p) for p in train_problems], renderer,
                                       "last_assistant_message")
    evaluate = accuracy_hook(task, problems, renderer, max_tokens=8)

    service = make_service(config)
    base_sampler = sampling_client(service, config.base_model)
    before = evaluate(base_sampler)["accuracy"]
    show(console, "before training", base_sampler, renderer, problems[: config.n_show])
    console.print(f"held-out accuracy before training: [bold]{before:.1%}[/bold] ({len(problems)} problems)")

    result = train(config, train_data, eval_hooks={"addition": evaluate}, service=service)
    after = result.metrics[-1]["addition/accuracy"]
    sampler = sampling_client(service, config.base_model, result.final_sampler_path)
    show(console, "after training", sampler, renderer, problems[: config.n_show])

    summary = result.write_summary({"accuracy_before": before, "accuracy_after": after}, started=started)
    console.print(f"held-out accuracy: [bold]{before:.1%} -> {after:.1%}[/bold] after {result.steps} steps "
                  f"in {summary['seconds']:.0f}s; run directory: {config.log_path}")
    return summary


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="sl"))
