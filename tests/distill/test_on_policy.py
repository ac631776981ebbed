"""On-policy distillation: reverse-KL advantages (checked against an independent computation with fake
clients), one teacher request per sequence, the teacher options, and short runs on tiny with resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fakes import Done, FakeSampler
from tinker import types
from trained_tiny import checkpoints, one_compute_thread, quickstart_run

import cookbook
from cookbook.distill.train import OnPolicyDistillConfig, distill_advantages, reverse_kl_hook, train
from cookbook.distill.types import PromptDataset, Teacher
from cookbook.errors import ConfigError
from cookbook.rl import train as rl_train  # the loop on-policy distillation runs
from cookbook.rl.data import groups_to_sequences
from cookbook.rl.rollouts import RolloutSettings, rollout_batch
from cookbook.rl.task_env import TaskRLDataset
from cookbook.rl.types import Env, EnvGroupBuilder, Observation, StepResult
from cookbook.tasks import AdditionTask
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer

PROMPT = [1, 2, 3]
FEEDBACK = [9, 9]  # the observation tokens between the two turns
STUDENT_LOGPROB = -0.5  # what FakeSampler gives every sampled token


def teacher_logprob(token: int) -> float:
    return -0.1 * (token % 5) - 0.35


class FakeTeacher:
    """compute_logprobs with a known logprob per token; records each request and each wait."""

    def __init__(self):
        self.requests, self.events = [], []

    def compute_logprobs(self, prompt):
        tokens = prompt.to_ints()
        self.requests.append(tokens)
        self.events.append("submit")
        events = self.events

        class Future(Done):
            def result(self, timeout=None):
                events.append("wait")
                return self.value
        return Future([None] + [teacher_logprob(t) for t in tokens[1:]])


class TwoTurns(Env):
    """Prompt, action, feedback tokens, action; reward ``reward`` at the end."""

    def __init__(self, reward: float):
        self.reward, self.turn = reward, 0

    def initial_observation(self):
        return Observation(types.ModelInput.from_ints(PROMPT), stop=[])

    def step(self, action):
        self.turn += 1
        if self.turn == 2:
            return StepResult(self.reward, True)
        self.prompt = PROMPT + list(action) + FEEDBACK
        return StepResult(0.0, False, Observation(types.ModelInput.from_ints(self.prompt), stop=[]))


class Group(EnvGroupBuilder):
    def __init__(self, rewards):
        self.rewards = rewards

    def make_envs(self):
        return [TwoTurns(r) for r in self.rewards]


def answer(prompt: list[int]) -> list[int]:
    return [len(prompt) + 10, len(prompt) + 11]  # different tokens in each turn


def _rollout(groups_rewards):
    groups, dropped = rollout_batch([Group(r) for r in groups_rewards], FakeSampler(answer),
                                    RolloutSettings(max_tokens=2, max_turns=2))
    assert dropped == 0
    return groups_to_sequences(groups)


@pytest.mark.parametrize("kl_coef,reward_coef", [(1.0, 0.0), (0.5, 2.0)])
def test_advantages_are_minus_kl_coef_times_the_logprob_gap_on_action_tokens_only(kl_coef, reward_coef):
    rewards = [[1.0, 0.0, 0.0], [2.0, 2.0, 5.0]]
    sequences = _rollout(rewards)
    assert len(sequences) == 6  # each two-turn episode merges into one sequence
    advantages, metrics = distill_advantages(sequences, FakeTeacher(), kl_coef=kl_coef, reward_coef=reward_coef)

    first, second = answer(PROMPT), answer(PROMPT + answer(PROMPT) + FEEDBACK)
    tokens = PROMPT + first + FEEDBACK + second
    is_action = [False] * len(PROMPT) + [True] * 2 + [False] * len(FEEDBACK) + [True] * 2
    for n, (sequence, adv) in enumerate(zip(sequences, advantages)):
        group_rewards = rewards[n // 3]
        centred = group_rewards[n % 3] - sum(group_rewards) / 3
        datum = sequence.to_datum(adv)
        assert datum.model_input.to_ints() == tokens[:-1]
        assert datum.loss_fn_inputs["target_tokens"].to_numpy().tolist() == tokens[1:]
        expected = [-kl_coef * (STUDENT_LOGPROB - teacher_logprob(t)) + reward_coef * centred if action else 0.0
                    for t, action in zip(tokens[1:], is_action[1:])]
        np.testing.assert_allclose(datum.loss_fn_inputs["advantages"].to_numpy(), expected, rtol=1e-5, atol=1e-6)

    gaps = [STUDENT_LOGPROB - teacher_logprob(t) for t, action in zip(tokens, is_action) if action]
    assert metrics["reverse_kl"] == pytest.approx(np.mean(gaps), abs=1e-6)
    assert metrics["student_logprob"] == pytest.approx(STUDENT_LOGPROB)
    assert metrics["teacher_logprob"] == pytest.approx(STUDENT_LOGPROB - np.mean(gaps))


def test_the_teacher_scores_each_sequence_once_all_submitted_before_any_wait():
    sequences = _rollout([[1.0, 0.0], [0.0, 0.0], [3.0, 1.0]])
    teacher = FakeTeacher()
    distill_advantages(sequences, teacher, kl_coef=1.0)
    assert teacher.requests == [s.tokens for s in sequences]
    assert teacher.events == ["submit"] * len(sequences) + ["wait"] * len(sequences)


def test_the_teacher_is_exactly_one_of_a_base_model_or_a_path():
    assert str(Teacher(path="local://run/sampler_weights/final")) == "local://run/sampler_weights/final"
    assert str(Teacher(base_model="tiny")) == "tiny"
    for bad in (Teacher, lambda: Teacher(base_model="tiny", path="p")):
        with pytest.raises(ConfigError, match="teacher_model .* teacher_path"):
            bad()
    with pytest.raises(ConfigError, match="exactly one"):
        train(OnPolicyDistillConfig(log_path="unused"), dataset=None)  # before any run directory is made


def test_prompt_dataset_deals_every_conversation_once_per_epoch_with_no_reward():
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    prompts = [[{"role": "user", "content": f"say {i}"}] for i in range(6)]
    dataset = PromptDataset(prompts, renderer, groups_per_batch=2, group_size=3, num_epochs=2)
    assert len(dataset) == 6
    epoch = [b.messages for i in range(3) for b in dataset.get_batch(i)]
    assert sorted(m[0]["content"] for m in epoch) == sorted(p[0]["content"] for p in prompts)
    reply = renderer.tokenizer.encode("ok") + list(renderer.get_stop_sequences())[:1]
    groups, _ = rollout_batch(dataset.get_batch(0), FakeSampler(lambda prompt: reply), RolloutSettings(max_tokens=8))
    assert [len(g.trajectories) for g in groups] == [3, 3] and all(r == 0.0 for g in groups for r in g.rewards)
    assert all(t.transitions[0].metrics == {"parse_ok": 1.0} for g in groups for t in g.trajectories)
    with pytest.raises(ConfigError, match="groups_per_batch"):
        PromptDataset(prompts, renderer, groups_per_batch=7)


# --- the loop on tiny, between checkpoints of a short quickstart run -------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _one_compute_thread():
    with one_compute_thread():
        yield


@pytest.fixture(scope="module")
def quickstart():
    """(step-3 state path, final sampler path) of the shared six-step quickstart run."""
    records = checkpoints(quickstart_run())
    return next(r["state_path"] for r in records if r["step"] == 3), next(r["sampler_path"] for r in records
                                                                         if r["final"])


@pytest.fixture(scope="module")
def addition():
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    task = AdditionTask()
    train_problems, test_problems = task.held_out_split(16, 4)
    return task, renderer, TaskRLDataset(task, train_problems, renderer, groups_per_batch=2, group_size=2)


def _config(tmp_path, **kw):
    base = dict(lora_rank=32, learning_rate=1e-3, max_tokens=4, progress=False, log_groups=1,
                log_path=str(tmp_path / "run"))
    return OnPolicyDistillConfig(**{**base, **kw})


class Interrupt(Exception):
    pass


def test_a_short_run_logs_the_reverse_kl_every_step_and_resumes(quickstart, addition, tmp_path, monkeypatch):
    student, teacher = quickstart
    task, renderer, dataset = addition
    config = _config(tmp_path, load_checkpoint_path=student, teacher_path=teacher, max_steps=4, save_every=2)
    calls = {"n": 0}
    real = rl_train._train_on

    def crash_on_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupt()
        return real(*args, **kwargs)
    monkeypatch.setattr(rl_train, "_train_on", crash_on_third)
    with pytest.raises(Interrupt):
        train(config, dataset)
    monkeypatch.setattr(rl_train, "_train_on", real)
    result = train(config, dataset)
    assert result.resumed_from == 2
    rows = result.metrics
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert math.isfinite(r["distill/reverse_kl"]) and r["distill/reverse_kl"] != 0  # a sample estimate: may be < 0
        assert r["distill/teacher_logprob"] == pytest.approx(r["distill/student_logprob"] - r["distill/reverse_kl"])
        assert {"reward/mean", "env/correct", "optim/grad_norm", "learning_rate", "time/teacher_s"} <= r.keys()
        assert r["sampler/logprob_diff_max"] < 1e-3  # the sampled logprobs are the student's (CPU fp32)
    assert [c["step"] for c in checkpoints(tmp_path / "run")] == [2, 4]
    assert "=== step 3 ===" in (tmp_path / "run" / "episodes.txt").read_text()


def test_a_student_distilled_from_itself_has_zero_reverse_kl(quickstart, addition, tmp_path):
    student, _ = quickstart
    task, renderer, dataset = addition
    service = cookbook.service_client("local")
    teacher = service.create_sampling_client(model_path=student)
    hook = reverse_kl_hook(teacher, dataset.get_batch(0), max_tokens=4)
    result = train(_config(tmp_path, load_checkpoint_path=student, teacher_path=student, max_steps=1,
                           learning_rate=0.0), dataset, eval_hooks={"heldout": hook}, service=service)
    row = result.metrics[0]
    assert abs(row["distill/reverse_kl"]) < 1e-4 and abs(row["heldout/reverse_kl"]) < 1e-4
    assert row["heldout/student_logprob"] < 0 and 0.0 <= row["heldout/reward"] <= 1.0
