"""Online DPO on addition: the tiny model's own replies, labelled by the grader (or a reward model), as pairs.

    cookbook run dpo/online load_checkpoint_path=local://<run>/weights/step_000300
    cookbook run dpo/online load_checkpoint_path=... loss_type=ipo beta=0.1
    cookbook run dpo/online load_checkpoint_path=... reward_model_path=local://<rm>/sampler_weights/final

Per step (``cookbook.preference.online.OnlineBatches``): the current weights answer ``batch_size``
training problems ``group_size`` times each at ``temperature``; each reply is scored by the
addition grader (1 for the exact sum) or, with ``reward_model_path``, by a likelihood reward model
(``cookbook.preference.reward_model``, e.g. the one ``rl/rlhf`` trains); each problem's best reply
is chosen over its worst, and a DPO step (any ``loss_type``) trains on those pairs against the
start weights as the frozen reference. Meant to continue from a partly trained SFT checkpoint (a
``cookbook quickstart`` run stopped early), as ``rl/addition`` is. Held-out greedy accuracy
(problems never trained on) is logged as ``addition/accuracy`` every ``eval_every`` steps and with
the start value in ``summary.json``.
"""

from __future__ import annotations

import time

import chz

from cookbook.completers import known_renderer, renderer_for, sampling_client
from cookbook.config import make_service
from cookbook.errors import ConfigError
from cookbook.hooks import accuracy_hook
from cookbook.preference.online import OnlineBatches, Scorer, grader, reward_model_scorer
from cookbook.preference.reward_model import RewardModel, ScoreFormat
from cookbook.preference.train import DPOConfig, reference_client, train
from cookbook.recipe_cli import run_recipe
from cookbook.tasks import AdditionTask


@chz.chz
class Config(DPOConfig):
    renderer: str = chz.field(default="tiny", validator=known_renderer)
    digits: int = 2
    n_train: int = 8000  # training problems (prompts)
    n_test: int = 200
    group_size: int = 4  # replies sampled per prompt; the best is chosen over the worst
    temperature: float = 1.0
    max_tokens: int = 6  # up to 3 digits and the end-of-turn token, with room to spare
    max_rounds: int = 4  # rounds of fresh prompts per step while the step has fewer than batch_size pairs
    reward_model_path: str | None = None  # label with this likelihood reward model instead of the grader
    beta: float = 0.1
    learning_rate: float = 1e-4
    batch_size: int = 32  # pairs per step
    max_steps: int | None = 300  # 100 steps gave +10 points from the quickstart step-300 checkpoint, 300 gave +25
    grad_clip_norm: float = 1.0
    eval_every: int = 25
    log_path: str = "runs/dpo_online"


def main(config: Config) -> dict:
    started = time.monotonic()
    if config.base_model == "tiny" and not config.load_checkpoint_path:
        raise ConfigError("on tiny, set load_checkpoint_path to a partly trained checkpoint (`cookbook quickstart "
                          "save_every=100 log_path=runs/qs` writes them; e.g. step_000300's state_path)")
    renderer = renderer_for(config.base_model, config.renderer)
    task = AdditionTask(digits=config.digits)
    train_problems, test_problems = task.held_out_split(config.n_train, config.n_test, seed=config.seed)
    service = make_service(config)
    scorer: Scorer = grader(task)
    if config.reward_model_path:
        model = RewardModel(sampling_client(service, config.base_model, config.reward_model_path), renderer,
                            ScoreFormat("likelihood"))
        scorer = reward_model_scorer(model)
    steps = config.max_steps or len(train_problems) // config.batch_size
    reference = None if not config.uses_reference else reference_client(config, service)
    batches = OnlineBatches(train_problems, scorer, renderer, reference, batch_size=config.batch_size, steps=steps,
                            group_size=config.group_size, max_tokens=config.max_tokens,
                            temperature=config.temperature, max_rounds=config.max_rounds, seed=config.seed)
    evaluate = accuracy_hook(task, test_problems, renderer, max_tokens=config.max_tokens)
    before = evaluate(sampling_client(service, config.base_model, config.load_checkpoint_path))["accuracy"]
    print(f"held-out greedy accuracy at the start: {before:.1%} ({len(test_problems)} problems)")
    result = train(config, batches, eval_hooks={"addition": evaluate}, service=service)
    after = result.metrics[-1]["addition/accuracy"]
    summary = result.write_summary({"accuracy_before": before, "accuracy_after": after,
                                    "start_checkpoint": config.load_checkpoint_path,
                                    "labels": config.reward_model_path or "grader",
                                    "reference_calls": result.reference_calls}, started=started)
    print(f"held-out greedy accuracy: {before:.1%} -> {after:.1%} after {result.steps} {config.loss_type} steps "
          f"in {summary['seconds']:.0f}s; run directory: {config.log_path}")
    return summary


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="dpo"))
