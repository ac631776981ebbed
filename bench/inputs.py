"""Fixed-seed workload inputs, shared verbatim by ours and the baseline.

Token ids are drawn from the 256 byte tokens that every bench tokenizer has, so no input holds
the pad / end-of-text id (batched ``generate`` would take a trailing pad for right padding).
The ids do not change the cost of anything measured.
"""

from __future__ import annotations

import numpy as np

TOKEN_RANGE = 256


def lengths(n: int, low: int, high: int, seed: int) -> list[int]:
    """``n`` lengths uniform in [low, high]."""
    return np.random.default_rng(seed).integers(low, high + 1, size=n).tolist()


def sequences(lens: list[int], seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed + 1)
    return [rng.integers(0, TOKEN_RANGE, size=n).tolist() for n in lens]


def training_batch(n: int, low: int, high: int, seed: int = 0) -> list[list[int]]:
    """``n`` sequences of ``L + 1`` tokens each, ``L`` uniform in [low, high].

    A sequence trains on ``L`` positions: input ``tokens[:-1]``, targets ``tokens[1:]``.
    """
    return sequences([n + 1 for n in lengths(n, low, high, seed)], seed)


def prompts(n: int, low: int, high: int, seed: int = 100) -> list[list[int]]:
    return sequences(lengths(n, low, high, seed), seed)


def sample_rows(prompt_list: list[list[int]], per_prompt: int) -> list[list[int]]:
    """Prompt-major rows: each prompt repeated ``per_prompt`` times."""
    return [p for p in prompt_list for _ in range(per_prompt)]


def decode_rows(prompt_list: list[list[int]], batch: int) -> list[list[int]]:
    """``batch`` rows cycling through the prompts (distinct prompts first)."""
    return [prompt_list[i % len(prompt_list)] for i in range(batch)]
