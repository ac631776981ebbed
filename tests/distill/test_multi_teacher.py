"""Multi-teacher on-policy distillation: each sequence is scored by its prompt source's teacher only (in
the advantages, in the RL loop's step and in the held-out hook), the ``teachers`` option, and sources
of a prompt dataset."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import FakeSampler
from test_on_policy import PROMPT, STUDENT_LOGPROB, FakeTeacher, Group, answer, teacher_logprob

from cookbook.distill.train import OnPolicyDistillConfig, distill_advantages, reverse_kl_hook
from cookbook.distill.types import PromptDataset, Teacher, parse_teachers
from cookbook.errors import ConfigError
from cookbook.rl import train as rl_train
from cookbook.rl.data import groups_to_sequences, sequence_sources
from cookbook.rl.rollouts import RolloutSettings, rollout_batch
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer


class Named(Group):
    def __init__(self, rewards, source):
        super().__init__(rewards)
        self.source = source

    def name(self):
        return self.source


class ShiftedTeacher(FakeTeacher):
    """A second teacher: every logprob ``shift`` lower than FakeTeacher's."""

    def __init__(self, shift):
        super().__init__()
        self.shift = shift

    def compute_logprobs(self, prompt):
        future = super().compute_logprobs(prompt)
        future.value = [None] + [v - self.shift for v in future.value[1:]]
        return future


def _groups(sources):
    groups, _ = rollout_batch([Named([1.0, 0.0], s) for s in sources], FakeSampler(answer),
                              RolloutSettings(max_tokens=2, max_turns=2))
    return groups


def _expected_gap(sequence, shift):
    mask = sequence.target_mask()
    return np.asarray([(STUDENT_LOGPROB - (teacher_logprob(t) - shift)) * m
                       for t, m in zip(sequence.tokens[1:], mask)], dtype=np.float32)


def test_each_sequence_goes_to_its_sources_teacher_only():
    groups = _groups(["math", "code", "math"])
    sequences = groups_to_sequences(groups)
    sources = sequence_sources(groups, sequences)
    assert sources == ["math"] * 2 + ["code"] * 2 + ["math"] * 2
    math, code = ShiftedTeacher(0.0), ShiftedTeacher(1.0)
    advantages, _ = distill_advantages(sequences, {"math": math, "code": code}, kl_coef=1.0, sources=sources)
    assert math.requests == [s.tokens for s, src in zip(sequences, sources) if src == "math"]
    assert code.requests == [s.tokens for s, src in zip(sequences, sources) if src == "code"]
    for sequence, source, adv in zip(sequences, sources, advantages):
        np.testing.assert_allclose(adv, -_expected_gap(sequence, 1.0 if source == "code" else 0.0), atol=1e-6)
    # the '*' entry is every other source's teacher; a source with no teacher is a ConfigError
    rest = ShiftedTeacher(1.0)
    distill_advantages(sequences, {"math": ShiftedTeacher(0.0), "*": rest}, kl_coef=1.0, sources=sources)
    assert len(rest.requests) == 2
    with pytest.raises(ConfigError, match="'code'"):
        distill_advantages(sequences, {"math": math}, kl_coef=1.0, sources=sources)


def test_the_rl_step_routes_by_the_groups_builder_names(monkeypatch):
    groups = _groups(["math", "code"])
    captured = {}

    def train_on(config, tc, sequences, advantages, step, total):
        captured["sequences"], captured["advantages"] = sequences, advantages
        return {}
    monkeypatch.setattr(rl_train, "_train_on", train_on)
    teachers = {"math": ShiftedTeacher(0.0), "code": ShiftedTeacher(2.0)}
    config = OnPolicyDistillConfig(teachers="math=local://a,code=local://b", log_path="unused")
    batch = rl_train.Batch(step=0, version=0, groups=groups, dropped=0, seconds=0.0)
    row = rl_train.train_step(config, None, batch, teachers, total=1)
    assert [len(t.requests) for t in teachers.values()] == [2, 2]
    for sequence, adv, shift in zip(captured["sequences"], captured["advantages"], [0.0, 0.0, 2.0, 2.0]):
        np.testing.assert_allclose(adv, -_expected_gap(sequence, shift), atol=1e-6)
    assert "distill/reverse_kl" in row


def test_the_held_out_hook_routes_too():
    teachers = {"math": ShiftedTeacher(0.0), "code": ShiftedTeacher(1.0)}
    hook = reverse_kl_hook(teachers, [Named([0.0, 0.0], "math"), Named([0.0, 0.0], "code")], max_tokens=2,
                           max_turns=2)
    metrics = hook.fn(FakeSampler(answer))
    assert [len(t.requests) for t in teachers.values()] == [2, 2]
    gaps = [STUDENT_LOGPROB - teacher_logprob(t) for t in answer(PROMPT)]
    assert metrics["reverse_kl"] > np.mean(gaps)  # the code teacher's lower logprobs count


def test_the_teachers_option():
    assert parse_teachers("math = local://a , code=local://b") == {"math": Teacher(path="local://a"),
                                                                 "code": Teacher(path="local://b")}
    for bad in ("math", "=local://a", "math=", "a=x,a=y"):
        with pytest.raises(ConfigError, match="teachers"):
            parse_teachers(bad)
    config = OnPolicyDistillConfig(teachers="math=local://a", teacher_path="local://t", log_path="unused")
    assert config.teacher_by_source() == {"math": Teacher(path="local://a"), "*": Teacher(path="local://t")}
    with pytest.raises(ConfigError, match="'\\*'"):
        OnPolicyDistillConfig(teachers="*=local://a", teacher_path="local://t", log_path="unused").teacher_by_source()
    assert OnPolicyDistillConfig(teacher_path="local://t", log_path="unused").teacher_by_source() == {
        "*": Teacher(path="local://t")}


def test_prompt_dataset_names_each_prompts_source():
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    prompts = [[{"role": "user", "content": f"say {i}"}] for i in range(4)]
    dataset = PromptDataset(prompts, renderer, groups_per_batch=4, sources=["a", "b", "a", "b"])
    names = {b.messages[0]["content"]: b.name() for b in dataset.get_batch(0)}
    assert names == {"say 0": "a", "say 1": "b", "say 2": "a", "say 3": "b"}
    assert {b.name() for b in PromptDataset(prompts, renderer, groups_per_batch=4).get_batch(0)} == {"prompt"}
    with pytest.raises(ConfigError, match="sources"):
        PromptDataset(prompts, renderer, groups_per_batch=2, sources=["a"])
