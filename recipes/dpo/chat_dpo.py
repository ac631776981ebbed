"""DPO on a real preference dataset: HH-RLHF transcripts, UltraFeedback-style message lists, or JSONL.

    cookbook run dpo/chat_dpo data.source=hf:Anthropic/hh-rlhf base_model=Qwen/Qwen3-0.6B renderer=qwen3
    cookbook run dpo/chat_dpo data.source=hf:HuggingFaceH4/ultrafeedback_binarized data.split=train_prefs ...
    cookbook run dpo/chat_dpo data.source=../shared/data/hh_rlhf/harmless-base-test.jsonl.gz max_steps=20

``data.source`` is any comparison source of ``cookbook.preference.data`` (a ``.jsonl`` / ``.jsonl.gz``
/ ``.json`` / ``.parquet`` file, a ``save_to_disk`` directory, ``hf:<name>[:<config>]``, or
``addition``). ``data.test_size`` comparisons are held out and their preference metrics logged as
``test/...``; the reference is the starting weights (the base model, or ``load_checkpoint_path``)
unless ``reference_path`` / ``reference_base`` say otherwise. The renderer is the recommended one
for ``base_model`` unless ``renderer`` names another.
"""

from __future__ import annotations

import random

import chz

from cookbook.completers import known_renderer, renderer_for
from cookbook.errors import ConfigError
from cookbook.preference.data import comparisons_to_pairs, load_comparisons
from cookbook.preference.train import DPOConfig, train
from cookbook.recipe_cli import run_recipe


@chz.chz
class DataConfig:
    source: str = "addition"  # a data file or save_to_disk directory, hf:<name>[:<config>], or addition
    split: str = "train"  # hub split (e.g. train_prefs for ultrafeedback_binarized)
    max_examples: int | None = None  # read at most this many rows
    max_length: int | None = 1024  # tokens per sequence (prompt + completion); longer ones are truncated
    test_size: int = 64  # held-out comparisons


@chz.chz
class Config(DPOConfig):
    data: DataConfig = chz.field(default_factory=DataConfig)
    renderer: str | None = chz.field(default=None, validator=known_renderer)  # None: base_model's recommended one
    log_path: str = "runs/chat_dpo"


def main(config: Config) -> dict:
    renderer = renderer_for(config.base_model, config.renderer)
    comparisons = load_comparisons(config.data.source, split=config.data.split, seed=config.seed,
                                   max_examples=config.data.max_examples)
    pairs = comparisons_to_pairs(comparisons, renderer, config.data.max_length)
    if len(pairs) <= config.data.test_size:
        raise ConfigError(f"data.test_size {config.data.test_size} leaves no training comparisons out of {len(pairs)}")
    random.Random(config.seed).shuffle(pairs)
    test_pairs, train_pairs = pairs[: config.data.test_size], pairs[config.data.test_size:]
    print(f"{len(train_pairs)} training and {len(test_pairs)} held-out comparisons "
          f"({len(comparisons) - len(pairs)} dropped: nothing left after truncation)")
    result = train(config, train_pairs, test_pairs)
    last = result.metrics[-1] if result.metrics else {}
    summary = {k: v for k, v in last.items() if k.startswith("test/")}
    print(f"after {result.steps} steps: " + ", ".join(f"{k}={v:.3f}" for k, v in summary.items()))
    return summary


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="dpo"))
