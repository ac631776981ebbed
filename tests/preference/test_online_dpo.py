"""Online DPO: pairs sampled from the current policy and labelled by a scorer, and its recipe end to end."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from fakes import Done, FakeTrainer
from tinker import types
from trained_tiny import checkpoints, one_compute_thread, quickstart_run

from cookbook.completers import renderer_for
from cookbook.errors import ConfigError
from cookbook.preference.online import NoPairsError, OnlineBatches, grader, reward_model_scorer
from cookbook.tasks import AdditionTask, Problem
from recipes.dpo import online as online_recipe
from renderers import text_content

RENDERER = renderer_for("tiny", "tiny")
END = RENDERER.get_stop_sequences()[0]


def _reply(text: str) -> list[int]:
    return [ord(c) for c in text] + [END]


class Sampler:
    """Answers ``num_samples`` replies "0", "1", ... to every prompt; records the prompts and seeds."""

    def __init__(self):
        self.requests = []

    def sample(self, prompt, num_samples, sampling_params):
        self.requests.append((prompt.to_ints(), sampling_params.seed))
        seqs = [types.SampledSequence(stop_reason="stop", sequence_id=str(i), tokens_np=np.array(_reply(str(i)),
                np.int32), logprobs_np=np.full(len(_reply(str(i))), -0.5, np.float32)) for i in range(num_samples)]
        return Done(types.SampleResponse(sequences=seqs))


def _problems(n):
    return [Problem([{"role": "user", "content": f"q{i}"}], str(i)) for i in range(n)]


def test_each_prompt_pairs_its_best_reply_with_its_worst_from_the_exact_sampled_tokens():
    sampler = Sampler()
    trainer = FakeTrainer(sampler)
    flat = {"q1", "q3"}  # every reply to these scores the same: no pair

    def score(problem, reply):
        return 1.0 if problem.messages[0]["content"] in flat else float(text_content(reply))

    batches = OnlineBatches(_problems(4), score, RENDERER, None, batch_size=4, steps=3, group_size=3, max_rounds=3)
    items, refs, metrics = batches.batch(0, trainer)
    assert trainer.snapshots == 1  # one sampling client of the current weights per step
    assert len(items) == 4 and refs == [(0.0, 0.0)] * 4  # no reference: reference-free losses
    assert metrics["online/rounds"] == 2 and metrics["online/frac_mixed"] == pytest.approx(4 / 8)
    assert metrics["online/chosen_score"] == 2.0 and metrics["online/rejected_score"] == 0.0
    for chosen, rejected in items:
        tokens = chosen.model_input.to_ints() + [int(chosen.loss_fn_inputs["target_tokens"].to_numpy()[-1])]
        prompt = tokens[: -len(_reply("2"))]
        assert tokens == prompt + _reply("2")  # the best reply's exact tokens after the prompt's
        assert RENDERER.decode(prompt).endswith("assistant\n")
        assert list(chosen.loss_fn_inputs["weights"].to_numpy()[-2:]) == [1.0, 1.0]
        assert chosen.loss_fn_inputs["weights"].to_numpy()[: len(prompt) - 1].sum() == 0
        last = int(rejected.loss_fn_inputs["target_tokens"].to_numpy()[-1])
        assert rejected.model_input.to_ints() + [last] == prompt + _reply("0")
    seeds = [seed for _, seed in sampler.requests]
    assert len(seeds) == 8 and len(set(seeds)) == 8  # two rounds of four prompts, each its own seed
    batches.batch(1, trainer)
    assert trainer.snapshots == 2 and len({s for _, s in sampler.requests}) == len(sampler.requests)


def test_a_step_with_no_mixed_prompt_says_how_to_get_pairs_and_bad_settings_are_refused():
    batches = OnlineBatches(_problems(2), lambda p, r: 0.5, RENDERER, None, batch_size=2, steps=1, max_rounds=2)
    with pytest.raises(NoPairsError, match="scored the same"):
        batches.batch(0, FakeTrainer(Sampler()))
    with pytest.raises(ConfigError, match="group_size"):
        OnlineBatches(_problems(2), lambda p, r: 0.0, RENDERER, None, batch_size=2, steps=1, group_size=1)
    with pytest.raises(ConfigError, match="batch_size"):
        OnlineBatches(_problems(2), lambda p, r: 0.0, RENDERER, None, batch_size=3, steps=1)


def test_the_scorers_grade_against_the_reference_or_ask_a_reward_model():
    task = AdditionTask()
    problem = task.problems(1, seed=0)[0]
    score = grader(task)
    assert score(problem, {"role": "assistant", "content": problem.reference}) == 1.0
    assert score(problem, {"role": "assistant", "content": problem.reference + "1"}) == 0.0

    async def model(messages, reply):
        return -float(text_content(reply))
    batches = OnlineBatches(_problems(2), reward_model_scorer(model), RENDERER, None, batch_size=2, steps=1)
    items, _, metrics = batches.batch(0, FakeTrainer(Sampler()))
    assert (metrics["online/chosen_score"], metrics["online/rejected_score"]) == (0.0, -3.0) and len(items) == 2


def test_online_dpo_recipe_on_tiny_trains_on_its_own_replies(tmp_path, monkeypatch):
    records = checkpoints(quickstart_run())
    start = next(r["state_path"] for r in records if r["step"] == 3)
    # the 3-step model cannot add yet: score each reply by a hash of its text, so that any two different
    # replies to a prompt make a pair and every step has pairs to train on, whatever the draw
    monkeypatch.setattr(online_recipe, "grader",
                        lambda task: lambda problem, reply: float(zlib.crc32(text_content(reply).encode())))
    config = online_recipe.Config(load_checkpoint_path=start, n_train=64, n_test=8, batch_size=4, group_size=3,
                                  max_steps=2, eval_every=1, lora_rank=32, progress=False,
                                  log_path=str(tmp_path / "online"))
    with one_compute_thread():
        summary = online_recipe.main(config)
    assert summary["steps"] == 2 and summary["labels"] == "grader" and 0 <= summary["accuracy_before"] <= 1
    rows = [json.loads(line) for line in (tmp_path / "online" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    assert all({"dpo/loss", "online/pairs", "online/reward_mean", "addition/accuracy"} <= r.keys() for r in rows)
    assert summary["reference_calls"] == 2 * sum(r["online/pairs"] for r in rows)  # each new pair scored once


def test_online_dpo_recipe_on_tiny_asks_for_a_start_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="load_checkpoint_path"):
        online_recipe.main(online_recipe.Config(log_path=str(tmp_path / "x"), progress=False))
