"""Environments rewarded by a scorer: the reward is the scorer's value, a reply that does not parse
gets the format reward, and scorers of concurrent episodes are awaited together."""

from __future__ import annotations

import asyncio

import pytest

from cookbook.errors import ConfigError
from cookbook.rl.reward_env import RewardEnv, RewardGroupBuilder, RewardRLDataset, reward_hook
from cookbook.rl.rollouts import RolloutSettings, rollout_batch, run_groups
from cookbook.tasks import AdditionTask
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer, text_content
from tests.fakes import FakeSampler

TASK = AdditionTask()


@pytest.fixture(scope="module")
def renderer():
    return get_renderer("tiny", get_tokenizer("tiny"))


def answering(renderer, text):
    """A fake sampler that replies ``text`` to every prompt."""
    return FakeSampler(lambda prompt: renderer.tokenizer.encode(text))


class Recorder:
    """An async scorer: the reply's length plus a tenth of the prompt's length; records its calls."""

    def __init__(self):
        self.calls = []

    async def __call__(self, prompt, reply):
        self.calls.append((prompt, reply))
        await asyncio.sleep(0)
        return len(text_content(reply)) + len(prompt[-1]["content"]) / 10


def test_the_reward_is_the_scorers_value_and_the_grade_is_logged(renderer):
    scorer = Recorder()
    problem = TASK.problem(12, 30)
    builder = RewardGroupBuilder(problem, renderer, scorer, 3, format_reward=-5.0, task=TASK)
    groups, dropped = rollout_batch([builder], answering(renderer, "42<|im_end|>"), RolloutSettings(max_tokens=8))
    assert dropped == 0
    assert groups[0].rewards == [2 + 0.5] * 3
    assert [c[1] for c in scorer.calls] == [{"role": "assistant", "content": "42"}] * 3
    assert all(c[0] == problem.messages for c in scorer.calls)
    step = groups[0].trajectories[0].transitions[0]
    assert step.metrics == {"parse_ok": 1.0, "score": 2.5, "correct": 1.0}
    assert "'42'" in step.log and "reference '42'" in step.log


def test_a_reply_that_does_not_parse_gets_the_format_reward_unscored(renderer):
    scorer = Recorder()
    env = RewardEnv(TASK.problem(1, 2), renderer, scorer, format_reward=-5.0, task=TASK)
    result = asyncio.run(env.step(renderer.tokenizer.encode("333")))  # cut off: no end of turn
    assert result.done and result.reward == -5.0 and not scorer.calls
    assert result.metrics == {"parse_ok": 0.0, "correct": 0.0}
    plain = RewardEnv(TASK.problem(1, 2), renderer, lambda prompt, reply: 0.75, format_reward=-5.0)
    result = asyncio.run(plain.step(renderer.tokenizer.encode("3<|im_end|>")))  # a synchronous scorer works too
    assert result.reward == 0.75 and "correct" not in result.metrics


def test_scorers_of_concurrent_episodes_are_awaited_together(renderer):
    """Each scorer waits until every episode's scorer has started: this finishes only if no scoring
    blocks the event loop the rollouts run in."""
    started, n = [], 4

    async def scorer(prompt, reply):
        started.append(prompt[-1]["content"])
        while len(started) < n:
            await asyncio.sleep(0.001)
        return 1.0 if text_content(reply) == "42" else 0.0

    builders = [RewardGroupBuilder(TASK.problem(12, 30), renderer, scorer, 2, format_reward=0.0),
                RewardGroupBuilder(TASK.problem(20, 22), renderer, scorer, 2, format_reward=0.0)]

    async def run():
        return await asyncio.wait_for(run_groups(builders, answering(renderer, "42<|im_end|>"), RolloutSettings()), 10)
    groups, dropped = asyncio.run(run())
    assert dropped == 0 and [g.rewards for g in groups] == [[1.0, 1.0], [1.0, 1.0]]
    assert sorted(started) == ["12+30", "12+30", "20+22", "20+22"]


def test_the_dataset_deals_shuffled_batches_of_groups(renderer):
    problems = TASK.problems(10, seed=0)
    dataset = RewardRLDataset(problems, renderer, Recorder(), groups_per_batch=3, group_size=2, format_reward=0.0,
                              num_epochs=2, seed=1)
    assert len(dataset) == 6
    first_epoch = [b.problem for i in range(3) for b in dataset.get_batch(i)]
    assert len(first_epoch) == 9 and len({TASK.key(p) for p in first_epoch}) == 9
    assert all(len(b.make_envs()) == 2 for b in dataset.get_batch(4))
    with pytest.raises(ConfigError, match="groups_per_batch"):
        RewardRLDataset(problems, renderer, Recorder(), groups_per_batch=11, group_size=2, format_reward=0.0)


def test_reward_hook_scores_greedy_replies(renderer):
    problems = [TASK.problem(12, 30), TASK.problem(1, 1)]
    scorer = Recorder()
    hook = reward_hook(scorer, problems, renderer, max_tokens=4, format_reward=-3.0, task=TASK)
    metrics = hook(answering(renderer, "42<|im_end|>"))
    assert metrics == pytest.approx({"reward": (2.5 + 2.3) / 2, "parse_ok": 1.0, "accuracy": 0.5})
    cut_off = reward_hook(scorer, problems, renderer, max_tokens=4, format_reward=-3.0)(answering(renderer, "4242"))
    assert cut_off == {"reward": -3.0, "parse_ok": 0.0}
