"""Log-probabilities in OpenAI's completions format: what ``logprobs`` and ``echo`` ask for.

``POST /v1/completions`` with ``logprobs: k`` (0-20) returns per choice ``{"tokens",
"token_logprobs", "top_logprobs", "text_offset"}``; with ``echo: true`` the prompt is part of the
text and its tokens come first: the first prompt token has no logprob (``None``), every later one
has ``log p(token | tokens before it)`` under the served weights, and its ``top_logprobs`` hold the
``k`` most likely tokens at that position. For generated tokens ``top_logprobs`` hold the sampled
token only (the backends return no alternatives for sampled tokens). Token strings are each token
decoded alone; ``text_offset`` adds up their lengths, so it is approximate where a token splits a
character. This is what lm-evaluation-harness's ``local-completions`` model reads to score
log-likelihoods (``echo``, ``logprobs=1``, ``max_tokens=1``).

May import ``tinker`` and the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tinker import types

MAX_LOGPROBS = 20


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def completion_logprobs(tokenizer: Any, prompt: Sequence[int], response: types.SampleResponse,
                        sampled: Sequence[int], sampled_logprobs: Sequence[float] | None, *, echo: bool,
                        start_offset: int = 0) -> dict[str, Any]:
    """The ``logprobs`` object of one choice: the prompt's tokens when ``echo``, then ``sampled``."""
    tokens: list[str] = []
    values: list[float | None] = []
    top: list[dict[str, float] | None] = []
    if echo:
        prompt_values = response.prompt_logprobs or [None] * len(prompt)
        top_k = response.topk_prompt_logprobs or [None] * len(prompt)
        for token, value, alternatives in zip(prompt, prompt_values, top_k):
            tokens.append(tokenizer.decode([token]))
            values.append(_finite(value))
            top.append(None if alternatives is None else
                       {tokenizer.decode([t]): float(lp) for t, lp in alternatives})
    for i, token in enumerate(sampled):
        text = tokenizer.decode([token])
        value = _finite(sampled_logprobs[i]) if sampled_logprobs is not None and i < len(sampled_logprobs) else None
        tokens.append(text)
        values.append(value)
        top.append(None if value is None else {text: value})
    offsets, position = [], start_offset
    for text in tokens:
        offsets.append(position)
        position += len(text)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": top, "text_offset": offsets}
