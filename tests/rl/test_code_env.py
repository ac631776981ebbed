"""The code RL environment: rewards from the sandbox, graded off the event loop, and rl/code on tiny."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from trained_tiny import one_compute_thread

from cookbook.rl.task_env import TaskGroupBuilder, ThreadedTaskEnv
from cookbook.tokenizer_utils import get_tokenizer
from evals.benchmarks import get_benchmark
from recipes.rl import code
from renderers import get_renderer

ROWS = [
    {"task_id": 11, "text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
     "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]},
    {"task_id": 12, "text": "Write a function that doubles a number.", "code": "def double(x):\n    return 2 * x",
     "test_list": ["assert double(4) == 8"]},
    {"task_id": 13, "text": "Write a function that reverses a string.", "code": "def rev(s):\n    return s[::-1]",
     "test_list": ["assert rev('ab') == 'ba'"]},
    {"task_id": 14, "text": "Write a function returning the length of a list.",
     "code": "def size(xs):\n    return len(xs)",
     "test_list": ["assert size([1, 2]) == 2"]},
]


@pytest.fixture()
def mbpp_file(tmp_path):
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path


def reply_tokens(renderer, text: str) -> list[int]:
    """The tokens a model would sample for the reply ``text`` (ending with its end-of-turn token)."""
    prompt = renderer.build_generation_prompt([{"role": "user", "content": "q"}]).to_ints()
    full = renderer.build_supervised_example([{"role": "user", "content": "q"},
                                              {"role": "assistant", "content": text}])[0].to_ints()
    tokens = full[len(prompt):]
    stops = set(renderer.get_stop_sequences())
    end = next(i for i, t in enumerate(tokens) if t in stops)
    return tokens[:end + 1]


def test_code_env_rewards_passing_code_and_grades_episodes_concurrently(mbpp_file):
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    bench = get_benchmark("mbpp", source=str(mbpp_file))
    problem = bench.examples()[0]
    right = reply_tokens(renderer, "```python\ndef add(a, b):\n    return a + b\n```")
    wrong = reply_tokens(renderer, "```python\ndef add(a, b):\n    return a * b\n```")
    slow = reply_tokens(renderer, "```python\nimport time\ntime.sleep(3.0)\ndef add(a, b):\n    return a + b\n```")
    envs = TaskGroupBuilder(bench, problem, renderer, group_size=4, grade_in_thread=True).make_envs()
    assert all(isinstance(env, ThreadedTaskEnv) for env in envs)

    async def episodes():
        for env in envs:
            env.initial_observation()
        return await asyncio.gather(*(env.step(a) for env, a in zip(envs, [right, wrong, slow, slow])))
    started = time.monotonic()
    results = asyncio.run(episodes())
    assert [r.reward for r in results] == [1.0, 0.0, 1.0, 1.0]
    assert all(r.done for r in results)
    # in turn the two 3-second programs would take 6 s; side by side 3 s plus start-up, which a busy
    # machine may stretch by seconds
    assert time.monotonic() - started < 5.5


def test_code_recipe_runs_two_steps_on_tiny(tmp_path, mbpp_file, monkeypatch):
    monkeypatch.setenv("COOKBOOK_CHECKPOINT_ROOT", str(tmp_path / "ckpt"))
    with one_compute_thread():
        run_two_steps(tmp_path, mbpp_file)


def run_two_steps(tmp_path, mbpp_file):
    config = code.Config(base_model="tiny", source=str(mbpp_file), eval_source=str(mbpp_file), groups_per_batch=2,
                         group_size=2, max_tokens=16, max_steps=2, n_eval=2, eval_every=1, lora_rank=4,
                         remove_constant_reward_groups=False, progress=False, log_groups=1,
                         log_path=str(tmp_path / "code"))
    result = code.main(config)
    rows = result.metrics
    assert [r["step"] for r in rows] == [0, 1]
    assert all("reward/mean" in r and "eval/mbpp/accuracy" in r and "env/parse_ok" in r for r in rows)
    assert all(r["train/sequences"] == 4 for r in rows)  # every episode trained (constant groups kept)
    assert "Your code should pass these tests" in (tmp_path / "code" / "episodes.txt").read_text()
