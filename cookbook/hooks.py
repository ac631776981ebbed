"""Hooks: something that runs every N steps with a training or sampling client and returns metrics.

Every loop takes ``hooks: Mapping[str, Hook | fn]``. The key is the metrics' prefix (hook
``"test"`` returning ``{"nll": 1.2}`` logs ``test/nll``); a plain function is a sampling hook
``fn(sampling_client) -> metrics`` that runs every ``eval_every`` steps. A :class:`Hook` says
which client it gets and may have its own period. Every hook also runs after the last step.
Sampling hooks due at the same step share one sampling client of the weights after that step.

Built in: :func:`nll_hook` (training client: mean NLL per weighted token of held-out data)
and :func:`accuracy_hook` (sampling client: greedy answers to a task's problems, graded).

May import ``cookbook.primitives``, ``cookbook.completers``, ``cookbook.tasks`` and ``renderers``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tinker import types

from cookbook.completers import MessageCompleter
from cookbook.primitives import SamplingClient, TrainingClient, ready
from cookbook.tasks import Problem, Task
from renderers import Renderer

Metrics = Mapping[str, float]
SamplingHookFn = Callable[[SamplingClient], Metrics]
TrainingHookFn = Callable[[TrainingClient], Metrics]


@dataclass(frozen=True)
class Hook:
    fn: Callable[[Any], Metrics]  # SamplingHookFn or TrainingHookFn, as ``client`` says
    client: Literal["sampling", "training"] = "sampling"
    every: int | None = None  # steps between runs; None: the loop's eval_every; 0: only after the last step

    def __call__(self, client: Any) -> Metrics:
        return self.fn(client)


class Hooks:
    """A loop's hooks by name: which are due after a step, and running them."""

    def __init__(self, hooks: Mapping[str, Hook | SamplingHookFn], *, default_every: int, total_steps: int) -> None:
        self.hooks = {name: h if isinstance(h, Hook) else Hook(h) for name, h in hooks.items()}
        self.default_every = default_every
        self.total_steps = total_steps

    def add(self, name: str, hook: Hook | SamplingHookFn) -> None:
        self.hooks[name] = hook if isinstance(hook, Hook) else Hook(hook)

    def due(self, step: int) -> list[str]:
        """Names of the hooks that run after ``step`` (0-based)."""
        def is_due(hook: Hook) -> bool:
            every = self.default_every if hook.every is None else hook.every
            return step == self.total_steps - 1 or (every > 0 and (step + 1) % every == 0)
        return [name for name, hook in self.hooks.items() if is_due(hook)]

    def run(self, step: int, training_client: TrainingClient) -> dict[str, float]:
        """Run the hooks due after ``step``; their metrics as ``<name>/<key>``."""
        metrics: dict[str, float] = {}
        sampler: SamplingClient | None = None
        for name in self.due(step):
            hook = self.hooks[name]
            client: SamplingClient | TrainingClient
            if hook.client == "training":
                client = training_client
            else:
                sampler = sampler or ready(training_client.save_weights_and_get_sampling_client())
                client = sampler
            metrics.update({f"{name}/{k}": float(v) for k, v in hook(client).items()})
        return metrics


def weight_sum(data: Sequence[types.Datum]) -> float:
    """Total loss weight of some datums (the number of trained tokens for 0/1 weights)."""
    return float(sum(d.loss_fn_inputs["weights"].to_numpy().sum() for d in data))


def mean_nll(training_client: TrainingClient, data: Sequence[types.Datum], batch_size: int = 64) -> float:
    """Mean negative log-likelihood per weighted token under the current weights."""
    futures = [training_client.forward(list(data[i: i + batch_size]), "cross_entropy")
               for i in range(0, len(data), batch_size)]
    loss = sum(f.result().metrics["loss:sum"] for f in futures)
    return loss / max(weight_sum(data), 1e-9)


def nll_hook(data: Sequence[types.Datum], every: int | None = None) -> Hook:
    """``{"nll": mean_nll(training_client, data)}`` (the SFT loop runs it on its test data as ``test``)."""
    return Hook(lambda training_client: {"nll": mean_nll(training_client, data)}, client="training", every=every)


def accuracy_hook(task: Task, problems: Sequence[Problem], renderer: Renderer, *, max_tokens: int = 64,
                  every: int | None = None) -> Hook:
    """Greedy answers to ``problems``, graded by ``task``: ``accuracy`` (mean grade of cleanly parsed
    answers) and ``parse_ok`` (fraction of answers that parsed cleanly)."""
    def run(sampling_client: SamplingClient) -> dict[str, float]:
        answers = MessageCompleter(sampling_client, renderer, max_tokens=max_tokens).complete_many(
            [p.messages for p in problems])
        score = sum(task.grade(p, a.text) if a.parsed else 0.0 for a, p in zip(answers, problems))
        return {"accuracy": score / len(problems), "parse_ok": sum(a.parsed for a in answers) / len(problems)}
    return Hook(run, every=every)
