"""Chat SFT: fine-tune a LoRA adapter on conversations from any dataset source.

    python -m recipes.sl.chat_sft data.source=conversations.jsonl base_model=Qwen/Qwen3-8B
    cookbook run sl/chat_sft preset=addition_tiny learning_rate=1e-3
    cookbook run sl/chat_sft --help

``data.source`` is ``addition``, a ``.jsonl``/``.json``/``.parquet`` file of ``{"messages": [...]}``
rows, a directory saved with ``datasets.save_to_disk``, or ``hf:<name>[:<config>]``. Every option
of the training loop (``cookbook.supervised.train.TrainConfig``: the run and optimizer sections of
``cookbook.config`` plus the loop's own) is a top-level key. A bad data line, a missing file or a
model that cannot be loaded stops with one line naming it (``--debug`` for the traceback).
``evals.benchmarks=gsm8k,math500`` (``evals.limit=...``) runs benchmarks as eval hooks every
``eval_every`` steps, logged as ``eval/<benchmark>/accuracy`` etc.
"""

from __future__ import annotations

import dataclasses

import chz

from cookbook.completers import known_renderer, renderer_for
from cookbook.errors import ConfigError
from cookbook.recipe_cli import run_recipe
from cookbook.run import RunResult
from cookbook.supervised.data import (
    DatasetSpec,
    TrainOnWhatName,
    conversations_to_data,
    load_conversations,
    load_mixture,
    parse_mix,
    split_train_test,
)
from cookbook.supervised.train import TrainConfig, train
from evals.hooks import EvalHooksConfig


@chz.chz
class DataConfig:
    source: str = "addition"
    split: str = "train"
    messages_field: str = "messages"
    prompt_field: str | None = None
    response_field: str | None = None
    system_prompt: str | None = None
    test_size: float = 0.05  # held-out fraction (< 1) or count (>= 1) for test NLL
    max_examples: int | None = None
    mix: str | None = None  # source=weight,source=weight: max_examples conversations drawn by weight (sets source)
    streaming: bool | None = None  # true: read rows lazily, never past max_examples (or a mixture's share)
    max_length: int | None = 2048  # tokens per example; longer ones are truncated
    train_on_what: TrainOnWhatName = "all_assistant_messages"


@chz.chz
class Config(TrainConfig):
    data: DataConfig = chz.field(default_factory=DataConfig)
    renderer: str | None = chz.field(default=None, validator=known_renderer)  # None: base_model's recommended one
    evals: EvalHooksConfig = chz.field(default_factory=EvalHooksConfig)  # benchmarks logged as eval/<name>/...
    log_path: str = "runs/chat_sft"


def build_data(config: Config):
    renderer = renderer_for(config.base_model, config.renderer)
    spec = DatasetSpec(config.data.source, config.data.split, config.data.messages_field, config.data.prompt_field,
                       config.data.response_field, config.data.system_prompt)
    if config.data.mix:
        if config.data.max_examples is None:
            raise ConfigError("data.mix draws data.max_examples conversations from its sources: set data.max_examples")
        specs = [(dataclasses.replace(spec, source=source), weight) for source, weight in parse_mix(config.data.mix)]
        conversations = load_mixture(specs, config.data.max_examples, seed=config.seed,
                                     streaming=bool(config.data.streaming))
    else:
        conversations = load_conversations(spec, seed=config.seed, limit=config.data.max_examples,
                                           streaming=bool(config.data.streaming))
    train_convs, test_convs = split_train_test(conversations, config.data.test_size, seed=config.seed)

    def to_data(convs):
        return conversations_to_data(convs, renderer, config.data.train_on_what, config.data.max_length)

    return to_data(train_convs), to_data(test_convs), renderer


def main(config: Config) -> RunResult:
    train_data, test_data, renderer = build_data(config)
    result = train(config, train_data, test_data, eval_hooks=config.evals.hooks(renderer))
    final = result.metrics[-1] if result.metrics else {}
    print(f"done: {result.steps} steps, final train loss {final.get('train/loss', float('nan')):.4f}, "
          f"test NLL {final.get('test/nll', float('nan')):.4f}; checkpoint {result.final_state_path}")
    return result


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="sl"))
