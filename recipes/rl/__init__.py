"""RL recipes: ``python -m recipes.rl.<name> key=value ...`` or ``cookbook run rl/<name> ...``.

Helpers shared by the recipes that teach a format by SFT first and then measure greedy play
before and after RL (``guess_number``, ``tool_use``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from cookbook.completers import sampling_client
from cookbook.hooks import Hook
from cookbook.primitives import SamplingClient, ServiceClient
from cookbook.rl.train import RLConfig, train
from cookbook.rl.types import RLDataset
from cookbook.run import sub_run
from cookbook.supervised.data import conversations_to_data
from cookbook.supervised.train import TrainConfig
from cookbook.supervised.train import train as sft_train
from renderers import Message, Renderer, ToolSpec


def sft_warm_up(config: RLConfig, conversations: Sequence[list[Message]], renderer: Renderer,
                service: ServiceClient, *, steps: int, learning_rate: float, batch_size: int,
                tools: Sequence[ToolSpec] | None = None) -> str | None:
    """SFT on every assistant turn of ``conversations`` (the sub-run ``sft_warmup``); returns the final
    checkpoint, where RL starts. A rerun finds the finished warm-up and reuses it."""
    data = conversations_to_data(conversations, renderer, "all_assistant_messages", tools=tools)
    sft = sub_run(config, TrainConfig, "sft_warmup", learning_rate=learning_rate,
                  warmup_steps=min(20, steps // 10), grad_clip_norm=1.0, batch_size=batch_size, max_steps=steps)
    return sft_train(sft, data, service=service).final_state_path


def rl_with_greedy_eval(config: RLConfig, dataset: RLDataset, evaluate: Callable[[SamplingClient], dict],
                        service: ServiceClient) -> dict:
    """RL from ``config.load_checkpoint_path`` (or the base model) with ``evaluate`` (greedy play)
    before, as the ``eval`` hook, and after; prints both and writes ``summary.json``."""
    started = time.monotonic()
    before = evaluate(sampling_client(service, config.base_model, config.load_checkpoint_path))
    print(f"greedy play before RL: {before}")
    result = train(config, dataset, eval_hooks={"eval": Hook(evaluate)}, service=service)
    after = {k.split("/", 1)[1]: v for k, v in result.metrics[-1].items() if k.startswith("eval/")}
    print(f"greedy play after RL: {after}")
    return result.write_summary({"before": before, "after": after,
                                 "start_checkpoint": config.load_checkpoint_path}, started=started)
