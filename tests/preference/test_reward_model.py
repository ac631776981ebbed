"""The Bradley-Terry reward model: its loss and gradients against an independent computation, the
reference-free loop making no reference calls, and the scorer against a plain forward pass."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
import torch
from tinker import types

import cookbook
from cookbook.errors import ConfigError
from cookbook.preference.data import addition_comparisons
from cookbook.preference.reward_model import (
    RewardModel,
    ScoreFormat,
    bradley_terry_config,
    comparisons_to_score_pairs,
    judge_prompt,
    pairwise_accuracy,
)
from cookbook.preference.train import DPOConfig, NoReference, batch_order, dpo_loss_fn, train
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer

JUDGE = ScoreFormat("judge", question="Correct?", verdict="Y")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return cookbook.service_client(checkpoint_root=tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def renderer():
    return get_renderer("tiny", get_tokenizer("tiny"))


@pytest.fixture(scope="module")
def comparisons():
    return addition_comparisons(16, seed=5, min_error=1, max_error=30)


@pytest.fixture(scope="module")
def trained(service, renderer, comparisons):
    """A training client moved off its zero LoRA init (so every parameter gets a gradient) and its sampler."""
    tc = service.create_lora_training_client("tiny", rank=4, seed=2)
    warm = [d for pair in comparisons_to_score_pairs(comparisons[8:], renderer, ScoreFormat("likelihood"))
            for d in pair]
    tc.forward_backward(warm, "cross_entropy").result()
    tc.optim_step(types.AdamParams(learning_rate=2e-2)).result()
    return tc, tc.save_weights_and_get_sampling_client()


def _grads(tc):
    grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in tc.adapter.parameters()]
    for p in tc.adapter.parameters():
        p.grad = None
    return grads


def _verdict_logprob(tc, tokens):
    """log p(last token | the ones before) from a plain forward pass (no weights involved)."""
    datum = types.Datum(model_input=types.ModelInput.from_ints(tokens[:-1]),
                        loss_fn_inputs={"target_tokens": tokens[1:], "weights": [1.0] * (len(tokens) - 1)})
    return float(tc.forward([datum], "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_numpy()[-1])


def test_judge_prompt_and_verdict(renderer):
    prompt, reply = [{"role": "user", "content": "2+3"}], {"role": "assistant", "content": "5"}
    text = renderer.decode(judge_prompt(renderer, prompt, [reply], JUDGE))
    assert text == ("<|im_start|>user\n2+3<|im_end|>\n<|im_start|>assistant\n5<|im_end|>\n"
                    "<|im_start|>user\nCorrect?<|im_end|>\n<|im_start|>assistant\n")
    comparison = addition_comparisons(1, seed=0)
    with pytest.raises(ConfigError, match="one"):
        comparisons_to_score_pairs(comparison, renderer, ScoreFormat("judge", verdict="Yes"))  # 3 bytes
    with pytest.raises(ConfigError, match="one"):
        RewardModel(object(), renderer, ScoreFormat("judge", verdict="Yes"))
    with pytest.raises(ConfigError, match="kind"):
        ScoreFormat("vibes")
    chosen, rejected = comparisons_to_score_pairs(comparison, renderer, JUDGE)[0]
    for datum in (chosen, rejected):  # the verdict is the only weighted target
        weights = datum.loss_fn_inputs["weights"].to_numpy()
        assert weights[-1] == 1 and weights[:-1].sum() == 0
        assert datum.loss_fn_inputs["target_tokens"].to_numpy()[-1] == renderer.tokenizer.encode("Y")[0]


def test_bradley_terry_loss_and_gradients_match_an_independent_computation(renderer, comparisons, trained):
    tc, _ = trained
    pairs = comparisons_to_score_pairs(comparisons[:4], renderer, JUDGE)
    data = [d for pair in pairs for d in pair]
    n = len(pairs)

    out = tc.forward_backward_custom(data, dpo_loss_fn(NoReference().get(range(n)), beta=1.0)).result()
    custom = _grads(tc)

    # Independent: each score is the verdict token's logprob at the end of its own sequence.
    full = [d.model_input.to_ints() + [int(d.loss_fn_inputs["target_tokens"].to_numpy()[-1])] for d in data]
    scores = [_verdict_logprob(tc, tokens) for tokens in full]
    margins = [scores[2 * i] - scores[2 * i + 1] for i in range(n)]
    expected = sum(math.log1p(math.exp(-m)) for m in margins) / n
    assert out.metrics["loss:sum"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert out.metrics["dpo/accuracy"] == pytest.approx(sum(m > 0 for m in margins) / n)

    # d loss / d score: chosen -sigmoid(-m)/n, rejected +sigmoid(-m)/n; cross_entropy with weight c on
    # the verdict has gradient -c * d score, so the two sides are two passes.
    sig = [1.0 / (1.0 + math.exp(m)) for m in margins]
    tc.forward_backward([_reweighted(data[2 * i], sig[i] / n) for i in range(n)], "cross_entropy").result()
    g_chosen = _grads(tc)
    tc.forward_backward([_reweighted(data[2 * i + 1], sig[i] / n) for i in range(n)], "cross_entropy").result()
    g_rejected = _grads(tc)
    assert any(g.abs().sum() > 0 for g in custom)
    for g, gc, gr in zip(custom, g_chosen, g_rejected):
        torch.testing.assert_close(g, gc - gr, rtol=1e-4, atol=1e-6)


def _reweighted(datum, scale):
    weights = (datum.loss_fn_inputs["weights"].to_numpy() * scale).tolist()
    return types.Datum(model_input=datum.model_input,
                       loss_fn_inputs={"target_tokens": datum.loss_fn_inputs["target_tokens"].to_numpy().tolist(),
                                       "weights": weights})


class NoSamplingService:
    """A service whose sampling clients must not be asked for logprobs."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create_sampling_client(self, *args, **kwargs):
        raise AssertionError("a reference-free run made a sampling client")


class Forbidden:
    def compute_logprobs(self, prompt):
        raise AssertionError("compute_logprobs called")


def test_reference_free_training_is_bradley_terry_and_makes_no_reference_calls(service, renderer, comparisons,
                                                                                tmp_path):
    pairs = comparisons_to_score_pairs(comparisons, renderer, JUDGE)
    config = bradley_terry_config(DPOConfig(lora_rank=4, learning_rate=1e-2, batch_size=4, max_steps=3, eval_every=1,
                                            log_path=str(tmp_path / "rm"), progress=False))
    assert config.reference_free and config.beta == 1.0
    result = train(config, pairs[:12], pairs[12:], service=NoSamplingService(service), reference=Forbidden())
    assert result.reference_calls == 0 and result.steps == 3
    assert all("test/accuracy" in r for r in result.metrics)

    # The first step's loss is the Bradley-Terry loss of the starting weights (the base model: LoRA B
    # starts at zero), not log 2 as in DPO, where the policy starts equal to its reference.
    base = service.create_sampling_client(base_model="tiny")
    first = [pairs[:12][i] for i in batch_order(12, 4, config.seed, 0)[0]]
    scores = [[base.compute_logprobs(types.ModelInput.from_ints(
        d.model_input.to_ints() + [int(d.loss_fn_inputs["target_tokens"].to_numpy()[-1])])).result()[-1] for d in p]
        for p in first]
    expected = np.mean([math.log1p(math.exp(-(c - r))) for c, r in scores])
    assert result.metrics[0]["dpo/loss"] == pytest.approx(expected, rel=1e-4)
    assert abs(result.metrics[0]["dpo/loss"] - math.log(2)) > 1e-3


@pytest.mark.parametrize("kind", ["judge", "likelihood"])
def test_scores_equal_a_forward_pass(renderer, trained, kind):
    tc, sampler = trained
    fmt = ScoreFormat(kind, question="Correct?", verdict="Y")
    reward_model = RewardModel(sampler, renderer, fmt)
    prompt = [{"role": "user", "content": "12+30"}]
    replies = [{"role": "assistant", "content": text} for text in ("42", "41", "7")]
    scores = reward_model.score_many([(prompt, r) for r in replies])

    async def concurrently():
        return await asyncio.gather(*(reward_model(prompt, r) for r in replies))
    assert asyncio.run(concurrently()) == pytest.approx(scores, abs=1e-6)

    for reply, score in zip(replies, scores):
        if kind == "judge":
            tokens = judge_prompt(renderer, prompt, [reply], fmt) + renderer.tokenizer.encode("Y")
            expected = _verdict_logprob(tc, tokens)
        else:  # the reply's tokens and its end of turn, each given the ones before
            tokens = renderer.build_generation_prompt(prompt).to_ints()
            reply_tokens = renderer.tokenizer.encode(reply["content"] + "<|im_end|>")
            expected = sum(_verdict_logprob(tc, tokens + reply_tokens[: i + 1]) for i in range(len(reply_tokens)))
        assert score == pytest.approx(expected, abs=1e-4)


def test_pairwise_accuracy_counts_pairs_the_scorer_orders_right(renderer, comparisons, trained):
    _, sampler = trained
    pairs = comparisons_to_score_pairs(comparisons, renderer, JUDGE)
    metrics = pairwise_accuracy(sampler, pairs)
    reward_model = RewardModel(sampler, renderer, JUDGE)
    chosen = reward_model.score_many([(c.prompt, c.chosen[0]) for c in comparisons])
    rejected = reward_model.score_many([(c.prompt, c.rejected[0]) for c in comparisons])
    margins = [a - b for a, b in zip(chosen, rejected)]
    assert metrics["accuracy"] == pytest.approx(sum(m > 0 for m in margins) / len(margins))
    assert metrics["margin"] == pytest.approx(np.mean(margins), abs=1e-5)


class AsyncOnly:
    """A sampling client whose futures may only be awaited (``result()`` would block an event loop)."""

    def __init__(self, logprobs):
        self.logprobs, self.prompts = logprobs, []

    def compute_logprobs(self, prompt):
        self.prompts.append(prompt.to_ints())
        value = self.logprobs

        class Future:
            def result(self, timeout=None):
                raise AssertionError("blocking result() inside the event loop")

            async def result_async(self, timeout=None):
                return [None] + [value] * (len(prompt.to_ints()) - 1)
        return Future()


def test_the_scorer_awaits_without_blocking(renderer):
    client = AsyncOnly(-0.25)
    reward_model = RewardModel(client, renderer, JUDGE)
    score = asyncio.run(reward_model([{"role": "user", "content": "1+1"}], {"role": "assistant", "content": "2"}))
    assert score == -0.25  # one weighted token: the verdict
    assert client.prompts[0][-1] == renderer.tokenizer.encode("Y")[0]
