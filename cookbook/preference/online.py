"""Online (iterative) DPO: each step's pairs are sampled from the current policy and labelled by a scorer.

:class:`OnlineBatches` is a :class:`cookbook.preference.train.Batches` for the preference loop. Per
step it takes a sampling client of the weights after the previous step, samples ``group_size``
replies to each of ``batch_size`` prompts (one request per prompt, all in flight together), scores
every reply, and pairs each prompt's best reply (chosen) with its worst (rejected) when their
scores differ; prompts whose replies all score the same are skipped and fresh prompts drawn, up to
``max_rounds`` rounds, until the step has ``batch_size`` pairs. The datums are the exact sampled
tokens after the prompt's tokens (token in, token out: a reply cut off at ``max_tokens`` is trained
as it was sampled). Reference logprobs are computed for each step's new pairs (nothing to cache:
no pair comes back). With the reference fixed at the starting weights this is online DPO (Guo et
al. 2024); a run per round, each starting from and referring to the last one's weights, is
iterative DPO (Xu et al. 2023, Xiong et al. 2024).

A scorer (:data:`Scorer`) is any ``(problem, reply message) -> score`` (plain or awaitable; a reply
that does not parse, e.g. one cut off at ``max_tokens``, scores 0 whatever the scorer says):
:func:`grader` scores with a :class:`cookbook.tasks.Task`'s ``grade`` against the problem's
reference, :func:`reward_model_scorer` with a reward model (``cookbook.preference.reward_model``,
or any awaitable scorer of ``(prompt messages, reply)``). Any loss type of the loop applies.

Metrics per step: ``online/reward_mean`` (the mean score of all sampled replies),
``online/frac_mixed`` (prompts whose replies did not all score the same), ``online/pairs``,
``online/rounds``, ``online/chosen_score``, ``online/rejected_score``.

May import the shared layer (``completers``, ``datums``, ``primitives``, ``seeds``, ``tasks``),
``cookbook.preference`` and ``renderers``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
from tinker import types

from cookbook.completers import TokenCompleter, TokensWithLogprobs
from cookbook.datums import next_token_datum
from cookbook.errors import ConfigError, UserError
from cookbook.preference.train import Item, NoReference, Pair, ReferenceLogprobs, References
from cookbook.primitives import SamplingClient, TrainingClient, ready
from cookbook.seeds import mix, rng
from cookbook.tasks import Problem, Task
from renderers import Message, Renderer, text_content

Scorer = Callable[[Problem, Message], float | Awaitable[float]]


def grader(task: Task) -> Scorer:
    """Scores a reply with ``task.grade`` against the problem's reference."""
    return lambda problem, reply: task.grade(problem, text_content(reply))


def reward_model_scorer(model: Callable[[Sequence[Message], Message], Awaitable[float]]) -> Scorer:
    """Scores a reply with a reward model (``await model(prompt messages, reply)``, e.g. a ``RewardModel``)."""
    return lambda problem, reply: model(problem.messages, reply)


class NoPairsError(UserError, RuntimeError):
    """A step found no prompt whose replies scored differently, so it has nothing to train on."""


class OnlineBatches:
    """Pairs sampled from the current weights for ``steps`` steps (see the module docstring)."""

    def __init__(self, problems: Sequence[Problem], scorer: Scorer, renderer: Renderer,
                 reference: SamplingClient | None, *, batch_size: int, steps: int, group_size: int = 4,
                 max_tokens: int = 64, temperature: float = 1.0, max_rounds: int = 4, seed: int = 0) -> None:
        if group_size < 2:
            raise ConfigError(f"online DPO pairs replies to one prompt: group_size must be >= 2, got {group_size}")
        if not 1 <= batch_size <= len(problems):
            raise ConfigError(f"batch_size {batch_size} must be between 1 and the number of prompts ({len(problems)})")
        self.problems, self.scorer, self.renderer, self.reference = list(problems), scorer, renderer, reference
        self.batch_size, self.steps, self.group_size, self.max_rounds = batch_size, steps, group_size, max_rounds
        self.max_tokens, self.temperature, self.seed = max_tokens, temperature, seed
        self.calls = 0

    @property
    def reference_calls(self) -> int:
        return self.calls

    def batch(self, step: int, training_client: TrainingClient) -> tuple[list[Item], References, dict[str, float]]:
        sampler = ready(training_client.save_weights_and_get_sampling_client())
        completer = TokenCompleter(sampler, max_tokens=self.max_tokens, temperature=self.temperature,
                                   stop=self.renderer.get_stop_sequences())
        pairs: list[Pair] = []
        scores: list[float] = []
        chosen_rejected: list[tuple[float, float]] = []
        mixed = prompts = rounds = 0
        while len(pairs) < self.batch_size and rounds < self.max_rounds:
            index = step * self.max_rounds + rounds
            problems = rng(self.seed, index).sample(self.problems, self.batch_size)
            new_pairs, new_scores, picked = self._round(completer, problems, index)
            pairs += new_pairs
            chosen_rejected += picked
            scores += new_scores
            mixed, prompts, rounds = mixed + len(new_pairs), prompts + len(problems), rounds + 1
        if not pairs:
            raise NoPairsError(f"step {step}: every reply to {prompts} prompts scored the same; no pair to train on "
                               "(raise group_size, temperature or max_rounds; if the replies were being learned, "
                               "the policy may have collapsed: lower learning_rate)")
        pairs, chosen_rejected = pairs[: self.batch_size], chosen_rejected[: self.batch_size]
        reference = ReferenceLogprobs(self.reference, pairs) if self.reference is not None else NoReference()
        refs = reference.get(range(len(pairs)))
        self.calls += reference.calls
        picked_scores = np.asarray(chosen_rejected, dtype=np.float64)
        return list(pairs), refs, {
            "online/reward_mean": float(np.mean(scores)), "online/frac_mixed": mixed / prompts,
            "online/pairs": len(pairs), "online/rounds": rounds,
            "online/chosen_score": float(picked_scores[:, 0].mean()),
            "online/rejected_score": float(picked_scores[:, 1].mean())}

    def _round(self, completer: TokenCompleter, problems: Sequence[Problem], index: int
               ) -> tuple[list[Pair], list[float], list[tuple[float, float]]]:
        """Round ``index`` of the run: every problem's replies sampled (prompt ``i`` seeded with
        ``mix(seed, index, i)``) and scored; (pairs, all scores, (chosen, rejected) scores)."""
        prompts = [self.renderer.build_generation_prompt(p.messages) for p in problems]
        seeds = [mix(self.seed, index, i) for i in range(len(prompts))]
        samples = completer.complete_many(prompts, self.group_size, seeds)
        parsed = [[self.renderer.parse_response(s.tokens) for s in group] for group in samples]
        scores = asyncio.run(_score_all(self.scorer, problems, [[m for m, _ in group] for group in parsed]))
        scores = [[x if ok else 0.0 for x, (_, ok) in zip(group_scores, group)]
                  for group_scores, group in zip(scores, parsed)]
        pairs, picked = [], []
        for prompt, group, group_scores in zip(prompts, samples, scores):
            best, worst = int(np.argmax(group_scores)), int(np.argmin(group_scores))
            if group_scores[best] > group_scores[worst]:
                pairs.append((_reply_datum(prompt, group[best]), _reply_datum(prompt, group[worst])))
                picked.append((group_scores[best], group_scores[worst]))
        return pairs, [x for group in scores for x in group], picked


async def _score_all(scorer: Scorer, problems: Sequence[Problem], replies: Sequence[Sequence[Message]]
                     ) -> list[list[float]]:
    """Every reply's score; awaitable scores (a reward model's) all in flight together."""
    async def one(problem: Problem, reply: Message) -> float:
        value: Any = scorer(problem, reply)
        return float(await value if inspect.isawaitable(value) else value)
    flat = await asyncio.gather(*(one(p, r) for p, group in zip(problems, replies) for r in group))
    sizes = [len(group) for group in replies]
    return [list(flat[sum(sizes[:i]): sum(sizes[: i + 1])]) for i in range(len(sizes))]


def _reply_datum(prompt: types.ModelInput, sample: TokensWithLogprobs) -> types.Datum:
    """The prompt and the exact sampled tokens, weights 1 on the reply."""
    tokens = prompt.to_ints()
    datum = next_token_datum(tokens + sample.tokens, [0.0] * len(tokens) + [1.0] * len(sample.tokens))
    assert datum is not None, "a sampled reply has at least one token"
    return datum
