"""Acceptance 6: every bad input raises its typed error and leaves the client exactly as it was."""

from __future__ import annotations

import math

import pytest
import torch
from backend_helpers import make_datum
from tinker import types

from cookbook.backend.local import errors

GOOD = [make_datum([10, 11, 12, 13, 14, 15]), make_datum([20, 21, 22, 23])]
CONTEXT = 2048
VOCAB = 263


def _datum(tokens, **inputs):
    return types.Datum(model_input=types.ModelInput.from_ints(tokens), loss_fn_inputs=inputs)


def _rl(n, **override):
    inputs = dict(target_tokens=[1] * n, logprobs=[-1.0] * n, advantages=[0.5] * n)
    inputs.update(override)
    return _datum([2] * n, **inputs)


BAD_TRAINING = [
    ("target length", errors.LengthMismatchError,
     lambda tc: tc.forward_backward([_datum([1, 2, 3], target_tokens=[2, 3], weights=[1.0, 1.0])], "cross_entropy")),
    ("weights length", errors.LengthMismatchError,
     lambda tc: tc.forward_backward([_datum([1, 2, 3], target_tokens=[2, 3, 4], weights=[1.0])], "cross_entropy")),
    ("advantages length", errors.LengthMismatchError,
     lambda tc: tc.forward_backward([_rl(3, advantages=[1.0, 2.0])], "ppo")),
    ("unknown loss", errors.UnknownLossError, lambda tc: tc.forward_backward(GOOD, "cross_entropy_typo")),
    ("missing input", errors.MissingLossInputError,
     lambda tc: tc.forward_backward([_datum([1, 2], target_tokens=[2, 3], logprobs=[0.0, 0.0])],
                                    "importance_sampling")),
    ("missing weights", errors.MissingLossInputError,
     lambda tc: tc.forward_backward([_datum([1, 2], target_tokens=[2, 3])], "cross_entropy")),
    ("token out of vocab", errors.TokenOutOfVocabularyError,
     lambda tc: tc.forward_backward([make_datum([1, 2, VOCAB + 5])], "cross_entropy")),
    ("negative token", errors.TokenOutOfVocabularyError,
     lambda tc: tc.forward([_datum([-1, 2], target_tokens=[2, 3], weights=[1.0, 1.0])], "cross_entropy")),
    ("target out of vocab", errors.TokenOutOfVocabularyError,
     lambda tc: tc.forward_backward([_datum([1, 2], target_tokens=[2, 10**6], weights=[1.0, 1.0])], "cross_entropy")),
    ("too long", errors.ContextLengthExceededError,
     lambda tc: tc.forward_backward([make_datum([5] * (CONTEXT + 2))], "cross_entropy")),
    ("empty data", errors.EmptyInputError, lambda tc: tc.forward_backward([], "cross_entropy")),
    ("empty input", errors.EmptyInputError,
     lambda tc: tc.forward_backward([_datum([], target_tokens=[], weights=[])], "cross_entropy")),
    ("nan weights", errors.NonFiniteInputError,
     lambda tc: tc.forward_backward([_datum([1, 2], target_tokens=[2, 3], weights=[1.0, math.nan])], "cross_entropy")),
    ("inf advantages", errors.NonFiniteInputError,
     lambda tc: tc.forward_backward([_rl(2, advantages=[1.0, math.inf])], "importance_sampling")),
    ("nan logprobs", errors.NonFiniteInputError,
     lambda tc: tc.forward_backward([_rl(2, logprobs=[math.nan, 0.0])], "ppo")),
    ("unknown config key", errors.InvalidRequestError,
     lambda tc: tc.forward_backward([_rl(2)], "ppo", {"clip_epsilon": 0.2})),
    ("optimizer kind", errors.OptimizerParamsError,
     lambda tc: tc.optim_step({"learning_rate": 1e-3})),
    ("optimizer kind dimuon", errors.OptimizerParamsError,
     lambda tc: tc.optim_step(types.DimuonParams(learning_rate=1e-3))),
    ("nan learning rate", errors.InvalidRequestError,
     lambda tc: tc.optim_step(types.AdamParams(learning_rate=math.nan))),
    ("unknown checkpoint", errors.CheckpointNotFoundError, lambda tc: tc.load_state("local://nope/weights/x")),
    ("unknown checkpoint dir", errors.CheckpointNotFoundError, lambda tc: tc.load_state_with_optimizer("/no/such/dir")),
    ("custom loss not callable", errors.InvalidRequestError, lambda tc: tc.forward_backward_custom(GOOD, "ce")),
    ("checkpoint name too long", errors.InvalidRequestError, lambda tc: tc.save_state("x" * 300)),
    ("checkpoint name with NUL", errors.InvalidRequestError, lambda tc: tc.save_state("a\x00b")),
    ("checkpoint name with a path", errors.InvalidRequestError, lambda tc: tc.save_weights_for_sampler("../x")),
    ("hidden checkpoint name", errors.InvalidRequestError, lambda tc: tc.save_state(".x")),
    ("rank wider than the model", errors.InvalidRequestError,
     lambda tc: tc.service.create_lora_training_client("tiny", rank=10**9)),
]


def _sampling_bad(sc):
    p = types.ModelInput.from_ints([1, 2, 3])
    return [
        ("empty prompt", errors.EmptyInputError,
         lambda: sc.sample(types.ModelInput.from_ints([]), 1, types.SamplingParams(max_tokens=4))),
        ("prompt + max_tokens > context", errors.ContextLengthExceededError,
         lambda: sc.sample(types.ModelInput.from_ints([1] * (CONTEXT - 2)), 1, types.SamplingParams(max_tokens=8))),
        ("prompt token out of vocab", errors.TokenOutOfVocabularyError,
         lambda: sc.sample(types.ModelInput.from_ints([1, VOCAB]), 1, types.SamplingParams(max_tokens=4))),
        ("stop id out of vocab", errors.TokenOutOfVocabularyError,
         lambda: sc.sample(p, 1, types.SamplingParams(max_tokens=4, stop=[VOCAB + 1]))),
        ("nan temperature", errors.NonFiniteInputError,
         lambda: sc.sample(p, 1, types.SamplingParams(max_tokens=4, temperature=math.nan))),
        ("zero samples", errors.InvalidRequestError, lambda: sc.sample(p, 0, types.SamplingParams(max_tokens=4))),
        ("seed above 64 bits", errors.InvalidRequestError,
         lambda: sc.sample(p, 1, types.SamplingParams(max_tokens=4, seed=2**70))),
        ("seed below -2**63", errors.InvalidRequestError,
         lambda: sc.sample(p, 1, types.SamplingParams(max_tokens=4, seed=-(2**70)))),
        ("bad top_p", errors.InvalidRequestError,
         lambda: sc.sample(p, 1, types.SamplingParams(max_tokens=4, top_p=0.0))),
        ("unknown sampler path", errors.CheckpointNotFoundError,
         lambda: sc.service.create_sampling_client(model_path="local://missing/sampler_weights/a")),
        ("unknown state path", errors.CheckpointNotFoundError,
         lambda: sc.service.create_training_client_from_state("local://missing/weights/a")),
    ]


def _step_and_forward(tc):
    tc.optim_step(types.AdamParams(learning_rate=1e-2, grad_clip_norm=1.0))
    return tc.forward(GOOD, "cross_entropy").result()


def test_bad_training_requests_leave_state_exactly_as_before(service):
    clean = service.create_lora_training_client("tiny", rank=8, seed=41)
    dirty = service.create_lora_training_client("tiny", rank=8, seed=41)
    for tc in (clean, dirty):
        tc.forward_backward(GOOD, "cross_entropy")  # accumulated gradients must survive the bad requests
        _step_and_forward(tc)
        tc.forward_backward(GOOD, "cross_entropy").result()

    for label, error, call in BAD_TRAINING:
        with pytest.raises(error) as info:
            call(dirty)
        assert str(info.value), label

    def exploding(data, logprobs):
        raise RuntimeError("bug in user loss")

    failing = dirty.forward_backward_custom(GOOD, exploding)
    with pytest.raises(RuntimeError, match="bug in user loss"):
        failing.result()
    not_scalar = dirty.forward_backward_custom(GOOD, lambda d, lps: (torch.cat(lps), {}))
    with pytest.raises(errors.InvalidRequestError):
        not_scalar.result()
    with pytest.raises(errors.InvalidRequestError, match="exists"):
        dirty.save_state("dup").result()
        dirty.save_state("dup").result()
    with pytest.raises(errors.InvalidRequestError, match="exists; choose another name"):
        dirty.save_weights_for_sampler("dup").result()
        dirty.save_weights_for_sampler("dup").result()

    out_clean, out_dirty = _step_and_forward(clean), _step_and_forward(dirty)
    assert out_clean.metrics == out_dirty.metrics
    for key, value in clean.adapter.state_dict().items():
        assert torch.equal(value, dirty.adapter.state_dict()[key]), key
    assert clean._optimizer.state_dict()["state"].keys() == dirty._optimizer.state_dict()["state"].keys()
    for (k, a), b in zip(clean._optimizer.state_dict()["state"].items(),
                         dirty._optimizer.state_dict()["state"].values()):
        assert all(torch.equal(a[x], b[x]) for x in a), k


def test_bad_sampling_requests_raise_and_the_sampler_keeps_working(service):
    tc = service.create_lora_training_client("tiny", rank=8, seed=42)
    sc = tc.save_weights_and_get_sampling_client()
    params = types.SamplingParams(max_tokens=6, temperature=0.0, stop=[])
    prompt = types.ModelInput.from_ints([7, 8, 9])
    before = sc.sample(prompt, 2, params).result()
    for _label, error, call in _sampling_bad(sc):
        with pytest.raises(error):
            call()
    after = sc.sample(prompt, 2, params).result()
    assert [s.tokens for s in before.sequences] == [s.tokens for s in after.sequences]


def test_errors_are_standard_exception_kinds():
    assert issubclass(errors.LengthMismatchError, ValueError)
    assert issubclass(errors.OptimizerParamsError, TypeError)
    assert issubclass(errors.CheckpointNotFoundError, FileNotFoundError)
