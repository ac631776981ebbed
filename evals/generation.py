"""Generate answers to chat prompts through a sampling client and grade them.

Works with any sampling client of the Tinker API (local or hosted): requests are submitted
together so the backend can batch them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tinker import types

from evals.graders import exact_match
from renderers import Message, Renderer, text_content


@dataclass(frozen=True)
class Problem:
    messages: list[Message]  # the conversation up to the answer
    reference: str


def generate(sampler: Any, renderer: Renderer, prompts: Sequence[Sequence[Message]], *, max_tokens: int = 64,
             temperature: float = 0.0) -> list[tuple[str, bool]]:
    """(answer text, parsed cleanly) per prompt, one sample each."""
    params = types.SamplingParams(max_tokens=max_tokens, temperature=temperature, stop=renderer.get_stop_sequences())
    futures = [sampler.sample(renderer.build_generation_prompt(list(p)), 1, params) for p in prompts]
    answers = []
    for future in futures:
        message, ok = renderer.parse_response(future.result().sequences[0].tokens)
        answers.append((text_content(message), ok))
    return answers


def accuracy_hook(problems: Sequence[Problem], renderer: Renderer, *, max_tokens: int = 64,
                  grader: Callable[[str, str], bool] = exact_match) -> Callable[[Any], Mapping[str, float]]:
    """An eval hook: greedy answers to ``problems``, graded; reports ``accuracy`` and ``parse_ok``."""
    def hook(sampler: Any) -> dict[str, float]:
        answers = generate(sampler, renderer, [p.messages for p in problems], max_tokens=max_tokens)
        correct = sum(ok and grader(text, p.reference) for (text, ok), p in zip(answers, problems))
        return {"accuracy": correct / len(problems), "parse_ok": sum(ok for _, ok in answers) / len(problems)}
    return hook
