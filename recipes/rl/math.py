"""RL on math problems with verifiable answers: GSM8K (``#### n``) or MATH-style ``\\boxed{}`` answers.

    cookbook run rl/math base_model=Qwen/Qwen3-4B                              # GSM8K train split from the hub
    cookbook run rl/math benchmark=gsm8k source=data/gsm8k/train.jsonl         # a local JSONL
    cookbook run rl/math benchmark=math500 source=hf:HuggingFaceH4/MATH-500 split=test

Each problem is a group of ``group_size`` answers sampled from the same prompt (the question plus
the benchmark's instruction, e.g. "write the final answer in \\boxed{}"); the reward is the
benchmark's grade of the final answer (``evals.graders``: numbers, fractions, LaTeX expressions,
tuples; sympy for the rest, under a timeout). ``eval_benchmark`` (default: the same benchmark's
test split) is scored greedily on ``n_eval`` problems every ``eval_every`` steps.
"""

from __future__ import annotations

import chz

from cookbook.completers import known_renderer, renderer_for
from cookbook.recipe_cli import run_recipe
from cookbook.rl.task_env import TaskRLDataset
from cookbook.rl.train import RLConfig, train
from cookbook.run import RunResult
from evals.benchmarks import get_benchmark, known_benchmark
from evals.hooks import benchmark_hook


@chz.chz
class Config(RLConfig):
    benchmark: str = chz.field(default="gsm8k", validator=known_benchmark)  # a built-in benchmark (evals.benchmarks)
    source: str | None = None  # a .jsonl/.parquet file or hf:<name>[:<config>] (default: the benchmark's)
    split: str = "train"
    max_problems: int | None = None
    renderer: str | None = chz.field(default=None, validator=known_renderer)  # None: base_model's recommended one
    groups_per_batch: int = 16  # problems per step
    group_size: int = 8  # answers per problem
    max_tokens: int = 512
    num_epochs: int = 1
    learning_rate: float = 4e-5
    eval_benchmark: str | None = chz.field(default=None, validator=known_benchmark)  # None: benchmark's test split
    n_eval: int = 100
    eval_every: int = 20
    log_path: str = "runs/rl_math"


def main(config: Config) -> RunResult:
    renderer = renderer_for(config.base_model, config.renderer)
    benchmark = get_benchmark(config.benchmark, source=config.source, split=config.split)
    problems = benchmark.examples(config.max_problems)
    dataset = TaskRLDataset(benchmark, problems, renderer, groups_per_batch=min(config.groups_per_batch, len(problems)),
                            group_size=config.group_size, num_epochs=config.num_epochs, seed=config.seed)
    hooks = {}
    if config.n_eval > 0:
        evaluation = get_benchmark(config.eval_benchmark or config.benchmark)
        hooks[f"eval/{evaluation.name}"] = benchmark_hook(evaluation, renderer, limit=config.n_eval,
                                                          max_tokens=config.max_tokens)
    result = train(config, dataset, eval_hooks=hooks, service=None)
    final = result.metrics[-1] if result.metrics else {}
    print(f"done: {result.steps} steps, final reward {final.get('reward/mean', float('nan')):.3f}; "
          f"checkpoint {result.final_state_path}")
    return result


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="rl"))
