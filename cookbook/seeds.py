"""Seeds derived from a run's ``seed``: one per epoch or step, the same way in every loop and recipe.

``derived_seed(seed, index)`` is the seed of epoch (or step, or problem) ``index`` of a run seeded
with ``seed``; :func:`shuffled` is the order of ``n`` items in an epoch; :func:`rng` a generator
for drawing a step's items; :func:`mix` a sampling seed for one request out of several indices (the
RL rollouts seed every sampled reply by run seed, step, group, episode and turn). A rerun with the
same seed draws the same batches and samples, which exact resume relies on.

A leaf: imports nothing of ours.
"""

from __future__ import annotations

import hashlib
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


def mix(*parts: int) -> int:
    """A 63-bit seed that depends on every one of ``parts`` (and their order): a hash, so nearby
    indices give unrelated seeds and no two index tuples share one in practice."""
    digest = hashlib.blake2b(",".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
