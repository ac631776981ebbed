"""RL on Python programming problems: the reward is whether the reply's code passes the tests, run in
the sandbox (``evals.sandbox``: no network, read-only filesystem, CPU / memory / output limits).

    cookbook run rl/code base_model=Qwen/Qwen3-4B                               # MBPP train split from the hub
    cookbook run rl/code source=data/my_problems.jsonl split=train              # MBPP-style rows of your own
    cookbook run rl/code benchmark=humaneval eval_benchmark=humaneval           # (HumanEval has a test split only)

A problem file holds MBPP-style rows: ``text`` (the task), ``code`` (a reference solution, used
only as SFT data), ``test_list`` (assert statements), optional ``test_setup_code``. Each problem is
a group of ``group_size`` replies; a reply's code is extracted (its ```python block), run with the
tests, and scores 1 when they pass. Grading runs in worker threads (``grade_in_thread``), so the
batch's programs run side by side, one per CPU. ``eval_benchmark`` (default: the same benchmark's
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
    benchmark: str = chz.field(default="mbpp", validator=known_benchmark)  # a code benchmark: mbpp or humaneval
    source: str | None = None  # a .jsonl/.json/.parquet file or hf:<name>[:<config>] (default: the benchmark's)
    split: str = "train"
    max_problems: int | None = None
    renderer: str | None = chz.field(default=None, validator=known_renderer)  # None: base_model's recommended one
    groups_per_batch: int = 16  # problems per step
    group_size: int = 8  # replies per problem
    max_tokens: int = 768
    num_epochs: int = 1
    learning_rate: float = 4e-5
    eval_benchmark: str | None = chz.field(default=None, validator=known_benchmark)  # None: benchmark's test split
    eval_source: str | None = None  # default: the eval benchmark's own data
    n_eval: int = 50
    eval_every: int = 20
    log_path: str = "runs/rl_code"


def main(config: Config) -> RunResult:
    renderer = renderer_for(config.base_model, config.renderer)
    benchmark = get_benchmark(config.benchmark, source=config.source, split=config.split)
    problems = benchmark.examples(config.max_problems)
    dataset = TaskRLDataset(benchmark, problems, renderer, groups_per_batch=min(config.groups_per_batch, len(problems)),
                            group_size=config.group_size, num_epochs=config.num_epochs, seed=config.seed,
                            grade_in_thread=True)
    hooks = {}
    if config.n_eval > 0:
        evaluation = get_benchmark(config.eval_benchmark or config.benchmark, source=config.eval_source)
        hooks[f"eval/{evaluation.name}"] = benchmark_hook(evaluation, renderer, limit=config.n_eval,
                                                          max_tokens=config.max_tokens)
    result = train(config, dataset, eval_hooks=hooks, service=None)
    final = result.metrics[-1] if result.metrics else {}
    print(f"done: {result.steps} steps, final reward {final.get('reward/mean', float('nan')):.3f}; "
          f"checkpoint {result.final_state_path}")
    return result


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, group="rl"))
