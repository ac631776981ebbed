"""A Bradley-Terry reward model: the policy's base model with its own LoRA adapter, scoring replies.

The reward model's score of a reply to a conversation is a log-probability under its weights, in
one of two formats (:class:`ScoreFormat`):

- ``judge`` (default): the log-probability of a fixed verdict token (``"Yes"``, or one character
  such as ``"Y"`` for a byte-level tokenizer) as the first token of its answer to a judge question
  asked after the reply::

      <the conversation> <the reply> user: <question>  assistant: <verdict>
                                                                  ^ score = log p(verdict)

- ``likelihood``: the log-probability of the reply itself (its tokens, end of turn included), the
  implicit reward of reference-free DPO. It needs no new output from the model, so a small model
  that already half knows the task starts from a useful score (the tiny model's addition recipe).

Trained on comparisons with the Bradley-Terry loss ``-logsigmoid(score(chosen) - score(rejected))``.
A reward datum (:func:`score_datum`) weights exactly the tokens whose log-probability is the score,
so that loss is the DPO loop's with no reference and ``beta = 1``: train with
``cookbook.preference.train.train`` on :func:`comparisons_to_score_pairs` and a config made by
:func:`bradley_terry_config` (``reference_free=True``, ``beta=1``).

Using it: :class:`RewardModel` scores (prompt messages, reply message) through any sampling client
of the trained weights (``compute_logprobs``; requests submitted together so the backend batches
them; ``await``-able without blocking an event loop, so it is an RL reward: ``cookbook.rl.reward_env``
takes it as a scorer). :func:`pairwise_accuracy` measures it on held-out pairs.

May import ``cookbook.preference``, the shared layer (``errors``, ``primitives``), ``renderers`` and ``tinker``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import chz
import torch
from tinker import APIFuture, types

from cookbook.datums import next_token_datum
from cookbook.errors import ConfigError, DataError
from cookbook.preference.data import completion_datum
from cookbook.preference.train import DPOConfig, Pair, ReferenceLogprobs, sequence_logprob
from cookbook.preference.types import Comparison
from cookbook.primitives import SamplingClient, result_async
from renderers import Message, Renderer

ScoreKind = Literal["judge", "likelihood"]
SCORE_KINDS: tuple[str, ...] = ("judge", "likelihood")


@dataclass(frozen=True)
class ScoreFormat:
    """What the reward model's score is the log-probability of (see the module docstring)."""

    kind: ScoreKind = "judge"
    question: str = "Is the last reply correct?"  # judge only
    verdict: str = "Yes"  # judge only: must be one token

    def __post_init__(self) -> None:
        if self.kind not in SCORE_KINDS:
            raise ConfigError(f"the reward model's score kind must be one of {', '.join(SCORE_KINDS)}, "
                              f"got {self.kind!r}")

    def verdict_token(self, tokenizer: Any) -> int:
        """The verdict's one token id; a :class:`ConfigError` when it encodes to more or fewer tokens."""
        ids = tokenizer.encode(self.verdict, add_special_tokens=False)
        if len(ids) != 1:
            raise ConfigError(f"the judge verdict {self.verdict!r} encodes to {len(ids)} tokens {ids}; it must be "
                              "exactly one (with a byte-level tokenizer, use one character such as 'Y')")
        return int(ids[0])

    def check(self, renderer: Renderer) -> None:
        """Raise the :class:`ConfigError` of a verdict that is not one token."""
        if self.kind == "judge":
            self.verdict_token(renderer.tokenizer)


def judge_prompt(renderer: Renderer, prompt: Sequence[Message], completion: Sequence[Message],
                 fmt: ScoreFormat) -> list[int]:
    """Tokens of the conversation, the completion, the judge question and the generation prompt."""
    question: Message = {"role": "user", "content": fmt.question}
    return renderer.build_generation_prompt([*prompt, *completion, question]).to_ints()


def score_datum(renderer: Renderer, prompt: Sequence[Message], completion: Sequence[Message], fmt: ScoreFormat,
                max_length: int | None = None) -> types.Datum | None:
    """Next-token datum whose weighted targets are the scored tokens (the verdict, or the completion);
    None when it does not fit in ``max_length`` tokens (a judge datum is dropped whole: its verdict is last)."""
    if fmt.kind == "likelihood":
        return completion_datum(prompt, completion, renderer, max_length)
    tokens = judge_prompt(renderer, prompt, completion, fmt) + [fmt.verdict_token(renderer.tokenizer)]
    if max_length is not None and len(tokens) - 1 > max_length:
        return None
    return next_token_datum(tokens, [0.0] * (len(tokens) - 1) + [1.0])


def comparisons_to_score_pairs(comparisons: Sequence[Comparison], renderer: Renderer, fmt: ScoreFormat,
                               max_length: int | None = None) -> list[Pair]:
    """(chosen, rejected) score datums of each comparison that fits in ``max_length`` on both sides."""
    fmt.check(renderer)  # a bad verdict fails even with no comparisons
    pairs = []
    for c in comparisons:
        chosen = score_datum(renderer, c.prompt, c.chosen, fmt, max_length)
        rejected = score_datum(renderer, c.prompt, c.rejected, fmt, max_length)
        if chosen is not None and rejected is not None:
            pairs.append((chosen, rejected))
    return pairs


def bradley_terry_config(config: DPOConfig) -> DPOConfig:
    """``config`` set to train a Bradley-Terry reward model: no reference, ``beta = 1``."""
    return chz.replace(config, reference_free=True, beta=1.0)


def pairwise_accuracy(sampling_client: SamplingClient, pairs: Sequence[Pair]) -> dict[str, float]:
    """On score pairs, under ``sampling_client``'s weights: ``accuracy`` (score of chosen > rejected),
    ``margin`` (mean score difference) and ``loss`` (mean Bradley-Terry loss)."""
    if not pairs:
        return {}
    scores = ReferenceLogprobs(sampling_client, pairs).get(range(len(pairs)))  # the weighted logprob is the score
    margins = [chosen - rejected for chosen, rejected in scores]
    return {"accuracy": sum(m > 0 for m in margins) / len(margins), "margin": sum(margins) / len(margins),
            "loss": sum(_softplus(-m) for m in margins) / len(margins)}


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


class RewardModel:
    """Scores replies: ``await reward_model(prompt, reply)`` is the score of the module docstring (a
    log-probability; higher is better). Each call submits its request at once, so concurrent calls
    (an RL batch's episodes) and :meth:`score_many` are batched by a backend that batches."""

    def __init__(self, sampling_client: SamplingClient, renderer: Renderer, fmt: ScoreFormat = ScoreFormat()) -> None:
        fmt.check(renderer)
        self.sampling_client, self.renderer, self.fmt = sampling_client, renderer, fmt

    def submit(self, prompt: Sequence[Message], reply: Message) -> tuple[types.Datum, APIFuture[list[float | None]]]:
        datum = score_datum(self.renderer, prompt, [reply], self.fmt)
        if datum is None:
            raise DataError("the reply renders to no scored token")
        tokens = datum.model_input.to_ints() + [int(datum.loss_fn_inputs["target_tokens"].to_numpy()[-1])]
        return datum, self.sampling_client.compute_logprobs(types.ModelInput.from_ints(tokens))

    async def __call__(self, prompt: Sequence[Message], reply: Message) -> float:
        datum, future = self.submit(prompt, reply)
        logprobs: list[float | None] = await result_async(future)
        return _score(datum, logprobs)

    def score_many(self, items: Sequence[tuple[Sequence[Message], Message]]) -> list[float]:
        """Scores of (prompt, reply) pairs from synchronous code: every request submitted, then awaited."""
        submitted = [self.submit(prompt, reply) for prompt, reply in items]
        return [_score(datum, future.result()) for datum, future in submitted]


def _score(datum: types.Datum, logprobs: Sequence[float | None]) -> float:
    """The weighted sum of the logprobs of a datum's targets (``logprobs`` of its whole sequence)."""
    shifted = [0.0 if x is None else x for x in logprobs[1:]]
    return float(sequence_logprob(torch.tensor(shifted, dtype=torch.float64), datum))
