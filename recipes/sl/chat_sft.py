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

import chz

from cookbook.checkpointing import RunResult
from cookbook.errors import ConfigError
from cookbook.recipe_cli import run_recipe
from cookbook.supervised.data import DatasetSpec, conversations_to_data, load_conversations, split_train_test
from cookbook.supervised.train import TrainConfig, train
from cookbook.tokenizer_utils import get_tokenizer
from evals.hooks import EvalHooksConfig
from renderers import get_recommended_renderer_name, get_renderer


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
    max_length: int | None = 2048  # tokens per example; longer ones are truncated
    train_on_what: str = "all_assistant_messages"


@chz.chz
class Config(TrainConfig):
    data: DataConfig = chz.field(default_factory=DataConfig)
    renderer: str | None = None  # default: base_model's family renderer, else auto (its own chat template)
    evals: EvalHooksConfig = chz.field(default_factory=EvalHooksConfig)  # benchmarks logged as eval/<name>/...
    log_path: str = "runs/chat_sft"


def build_data(config: Config):
    tokenizer = get_tokenizer(config.base_model)
    try:
        renderer = get_renderer(config.renderer or get_recommended_renderer_name(config.base_model), tokenizer)
    except ValueError as exc:  # an unknown name, or no renderer for this model (e.g. no chat template)
        raise ConfigError(f"renderer: {exc}") from None
    spec = DatasetSpec(config.data.source, config.data.split, config.data.messages_field, config.data.prompt_field,
                       config.data.response_field, config.data.system_prompt)
    conversations = load_conversations(spec, seed=config.seed)
    if config.data.max_examples is not None:
        conversations = conversations[: config.data.max_examples]
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
