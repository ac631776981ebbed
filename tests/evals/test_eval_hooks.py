"""Benchmarks as eval hooks: logged as eval/<benchmark>/<metric> in metrics.jsonl by the SFT loop (in
code and from the chat_sft command line) and by the RL loop, whose environments can use a benchmark
as their task."""

from __future__ import annotations

import pytest
from fakes import FakeSampler
from trained_tiny import metrics

from cookbook.rl.task_env import TaskRLDataset
from cookbook.rl.train import RLConfig
from cookbook.rl.train import train as rl_train
from cookbook.supervised.data import conversations_to_data
from cookbook.supervised.train import TrainConfig
from cookbook.supervised.train import train as sft_train
from cookbook.tasks import AdditionTask
from cookbook.tokenizer_utils import get_tokenizer
from evals.benchmarks import get_benchmark
from evals.hooks import benchmark_hook, benchmark_hooks
from recipes.__main__ import main as cookbook_main
from renderers import get_renderer


@pytest.fixture(scope="module")
def renderer():
    return get_renderer("tiny", get_tokenizer("tiny"))


def test_a_hook_returns_the_runner_summary(renderer):
    tok = renderer.tokenizer
    # answers every prompt with "1" and the end-of-turn token: right for exactly the problems whose sum is 1
    sampler = FakeSampler(lambda prompt: tok.encode("1", add_special_tokens=False) + renderer.get_stop_sequences())
    metrics_ = benchmark_hook("addition:1", renderer, limit=50)(sampler)
    problems = get_benchmark("addition:1").examples(limit=50)
    assert metrics_["accuracy"] == pytest.approx(sum(p.reference == "1" for p in problems) / 50)
    assert metrics_["truncation_rate"] == 0.0 and "stderr" in metrics_ and "pass@1" in metrics_
    assert sampler.params[0].max_tokens == 8 and sampler.params[0].temperature == 0.0


def test_sft_loop_logs_benchmark_hooks(tmp_path, renderer):
    task = AdditionTask(2)
    data = conversations_to_data(task.conversations(64, seed=5), renderer, "last_assistant_message")
    config = TrainConfig(batch_size=16, max_steps=4, eval_every=2, lora_rank=8, learning_rate=1e-3,
                         log_path=str(tmp_path / "sft"), progress=False)
    hooks = benchmark_hooks("addition, addition:1", renderer, limit=10)
    assert set(hooks) == {"eval/addition", "eval/addition:1"}
    sft_train(config, data, eval_hooks=hooks)
    rows = metrics(tmp_path / "sft")
    logged = [r["step"] for r in rows if "eval/addition/accuracy" in r]
    assert logged == [1, 3] and all("eval/addition:1/accuracy" in rows[s] for s in logged)
    assert {"eval/addition/stderr", "eval/addition/truncation_rate"} <= set(rows[3])


def test_chat_sft_command_line_runs_benchmark_hooks(tmp_path):
    log = tmp_path / "chat_sft"
    assert cookbook_main(["run", "sl/chat_sft", "data.source=addition", "data.max_examples=48", "batch_size=16",
                          "max_steps=2", "eval_every=1", "lora_rank=8", "evals.benchmarks=addition",
                          "evals.limit=8", f"log_path={log}", "progress=False"]) == 0
    rows = metrics(log)
    assert [r["step"] for r in rows if "eval/addition/accuracy" in r] == [0, 1]


def test_rl_loop_logs_benchmark_hooks_and_takes_a_benchmark_as_its_task(tmp_path, renderer):
    benchmark = get_benchmark("addition:1")  # a Task: its problems and grades drive the environments
    dataset = TaskRLDataset(benchmark, benchmark.problems(8, seed=0), renderer, groups_per_batch=2, group_size=2)
    config = RLConfig(max_steps=2, eval_every=1, lora_rank=8, max_tokens=4, log_path=str(tmp_path / "rl"),
                      progress=False, log_groups=0)
    rl_train(config, dataset, eval_hooks=benchmark_hooks(["addition:1"], renderer, limit=8))
    rows = metrics(tmp_path / "rl")
    assert [r["step"] for r in rows if "eval/addition:1/accuracy" in r] == [0, 1]
