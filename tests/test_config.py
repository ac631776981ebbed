"""Shared config sections: flat keys in every loop config, the same config.json keys, AdamParams per step."""

from __future__ import annotations

import chz
import pytest

from cookbook.config import OptimizerConfig, RunConfig
from cookbook.lr_schedules import lr_at
from cookbook.recipe_cli import parse_config
from cookbook.supervised.train import TrainConfig
from recipes.sl import chat_sft, quickstart

# The keys of TrainConfig before the shared sections existed: config.json of older runs holds
# exactly these, so a rerun of such a run must produce the same set to resume it, apart from
# options added later with the default None (a run directory treats None as absent).
LATER_NONE_KEYS = {"load_checkpoint_path", "loss_normalization", "pack_length"}
SFT_KEYS = {
    "base_model", "lora_rank", "seed", "learning_rate", "lr_schedule", "warmup_steps", "min_lr_ratio",
    "weight_decay", "grad_clip_norm", "beta1", "beta2", "batch_size", "max_tokens_per_batch", "num_epochs",
    "max_steps", "eval_every", "save_every", "log_path", "if_exists", "backend", "base_url", "wandb_project",
    "wandb_name", "progress",
}


def test_sft_config_composes_the_sections_with_the_same_flat_keys():
    config = TrainConfig()
    assert isinstance(config, RunConfig) and isinstance(config, OptimizerConfig)
    assert set(chz.asdict(config)) == SFT_KEYS | LATER_NONE_KEYS
    assert all(chz.asdict(config)[k] is None for k in LATER_NONE_KEYS)
    assert config.log_path == "runs/sft" and config.learning_rate == 1e-4 and config.beta2 == 0.95


@pytest.mark.parametrize("recipe", [chat_sft, quickstart])
def test_recipe_configs_take_section_keys_at_the_top_level(recipe):
    config = parse_config(recipe.Config, ["learning_rate=0.02", "lr_schedule=cosine", "log_path=/tmp/x", "seed=3",
                                          "if_exists=refuse", "backend=tinker", "wandb_project=p"], group="sl")
    assert (config.learning_rate, config.lr_schedule, config.log_path, config.seed, config.if_exists,
            config.backend, config.wandb_project) == (0.02, "cosine", "/tmp/x", 3, "refuse", "tinker", "p")


def test_adam_params_follow_the_schedule():
    opt = OptimizerConfig(learning_rate=1e-3, lr_schedule="cosine", warmup_steps=2, min_lr_ratio=0.1,
                          weight_decay=0.01, grad_clip_norm=1.0, beta1=0.8, beta2=0.9)
    for step in range(10):
        adam = opt.adam_params(step, 10)
        assert adam.learning_rate == lr_at(step, base_lr=1e-3, total_steps=10, schedule="cosine", warmup_steps=2,
                                           min_lr_ratio=0.1) == opt.lr(step, 10)
        assert (adam.beta1, adam.beta2, adam.weight_decay, adam.grad_clip_norm) == (0.8, 0.9, 0.01, 1.0)


def test_a_run_written_before_a_none_default_option_existed_still_resumes(tmp_path):
    from cookbook.run_dir import RunDir, RunDirError

    old = {k: v for k, v in chz.asdict(TrainConfig(log_path=str(tmp_path))).items() if k not in LATER_NONE_KEYS}
    RunDir(tmp_path, old)
    RunDir(tmp_path, chz.asdict(TrainConfig(log_path=str(tmp_path))))  # the new option unset: the same run
    with pytest.raises(RunDirError, match="differs in: load_checkpoint_path"):
        RunDir(tmp_path, chz.asdict(TrainConfig(log_path=str(tmp_path), load_checkpoint_path="local://x")))
