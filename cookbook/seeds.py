"""Seeds derived from a run's ``seed``: one per epoch or step, the same way in every loop and recipe.

``derived_seed(seed, index)`` is the seed of epoch (or step, or problem) ``index`` of a run seeded
with ``seed``; :func:`shuffled` is the order of ``n`` items in an epoch; :func:`rng` a generator
for drawing a step's items. A rerun with the same seed draws the same batches, which exact resume
relies on.

A leaf: imports nothing of ours.
"""

from __future__ import annotations

import random

_STRIDE = 1_000_003  # a prime larger than any epoch or step count, so (seed, index) pairs never collide


def derived_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th epoch / step / problem of a run seeded with ``seed``."""
    return seed * _STRIDE + index


def rng(seed: int, index: int) -> random.Random:
    """A random generator for the ``index``-th epoch / step of a run seeded with ``seed``."""
    return random.Random(derived_seed(seed, index))


def shuffled(n: int, seed: int, epoch: int) -> list[int]:
    """``range(n)`` in the order of ``epoch`` of a run seeded with ``seed``."""
    order = list(range(n))
    rng(seed, epoch).shuffle(order)
    return order
