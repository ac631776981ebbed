"""Hooks: when they run, which client they get, how their metrics are named."""

from __future__ import annotations

from fakes import FakeSampler, FakeTrainer
from tinker import types

from cookbook.hooks import Hook, Hooks, accuracy_hook, mean_nll, nll_hook
from cookbook.tasks import AdditionTask
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer


def test_due_every_n_steps_and_after_the_last():
    hooks = Hooks({"a": lambda s: {}, "b": Hook(lambda s: {}, every=3), "c": Hook(lambda s: {}, every=0)},
                  default_every=4, total_steps=10)
    assert {step: hooks.due(step) for step in range(10) if hooks.due(step)} == {
        2: ["b"], 3: ["a"], 5: ["b"], 7: ["a"], 8: ["b"], 9: ["a", "b", "c"]}
    assert Hooks({}, default_every=1, total_steps=5).due(4) == []


def test_clients_and_metric_names():
    sampler = object()
    trainer = FakeTrainer(sampler)
    seen = []
    hooks = Hooks({"test": Hook(lambda tc: seen.append(tc) or {"nll": 1}, client="training"),
                   "evalA": lambda sc: seen.append(sc) or {"accuracy": 0.5},
                   "evalB": Hook(lambda sc: seen.append(sc) or {"x": 2})}, default_every=2, total_steps=6)
    assert hooks.run(0, trainer) == {} and trainer.snapshots == 0  # nothing due: no snapshot
    assert hooks.run(1, trainer) == {"test/nll": 1.0, "evalA/accuracy": 0.5, "evalB/x": 2.0}
    assert seen == [trainer, sampler, sampler] and trainer.snapshots == 1  # sampling hooks share one snapshot
    only_training = Hooks({"test": Hook(lambda tc: {"nll": 1}, client="training")}, default_every=1, total_steps=2)
    only_training.run(0, trainer)
    assert trainer.snapshots == 1


def test_nll_hook_is_mean_nll_per_weighted_token():
    datum = types.Datum(model_input=types.ModelInput.from_ints([1, 2, 3]),
                        loss_fn_inputs={"target_tokens": [2, 3, 4], "weights": [0.0, 1.0, 1.0]})
    trainer = FakeTrainer()
    assert mean_nll(trainer, [datum] * 5, batch_size=2) == 2.0 * 5 / 10 and trainer.forwards == 3
    assert nll_hook([datum]).client == "training" and nll_hook([datum])(trainer) == {"nll": 1.0}


def test_accuracy_hook_grades_parsed_answers_with_the_task():
    tokenizer = get_tokenizer("tiny")
    renderer = get_renderer("tiny", tokenizer)
    task = AdditionTask()
    problems = task.problems(6, seed=0)
    index = {tuple(renderer.build_generation_prompt(p.messages).to_ints()): i for i, p in enumerate(problems)}

    def answer(prompt):  # right for the first four problems, wrong for the fifth, cut off for the sixth
        i = index[tuple(prompt)]
        text = "0" if i == 4 else problems[i].reference
        return tokenizer.encode(text + ("" if i == 5 else "<|im_end|>"), add_special_tokens=False)

    metrics = accuracy_hook(task, problems, renderer, max_tokens=8)(FakeSampler(answer))
    assert metrics == {"accuracy": 4 / 6, "parse_ok": 5 / 6}
