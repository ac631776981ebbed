"""What an SFT user provides: conversations, turned into next-token datums for ``train``.

Conversations come from ``cookbook.supervised.data`` (files, saved datasets, the hub) or from a
``cookbook.tasks.Task``; ``conversations_to_data`` renders them into :data:`SupervisedData`;
hooks (``cookbook.hooks``) add evaluations. Imports only types (``tinker``, ``cookbook.tasks``).
"""

from __future__ import annotations

from collections.abc import Sequence

from tinker import types

from cookbook.tasks import Conversation

SupervisedData = Sequence[types.Datum]  # next-token datums: target_tokens and weights (0 = not trained)

__all__ = ["Conversation", "SupervisedData"]
