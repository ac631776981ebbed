"""The tokenizer of a base model, without creating a client (renderers need it to build data).

Imports the ``cookbook.tiny`` leaf for the embedded model, never a backend.
"""

from __future__ import annotations

import functools
import os

from cookbook.errors import ModelLoadError


@functools.lru_cache(maxsize=8)
def get_tokenizer(base_model: str):
    """``"tiny"`` -> the embedded byte-level tokenizer; otherwise ``AutoTokenizer`` by id or directory.

    Raises :class:`cookbook.errors.ModelLoadError` (naming ``base_model``) when it cannot be loaded.
    """
    if base_model == "tiny":
        from cookbook.tiny import build_tiny_tokenizer  # imported here: it loads torch and transformers

        return build_tiny_tokenizer()
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(os.path.expanduser(base_model))
    except (OSError, ValueError) as exc:  # unknown id, hub unreachable, not a model directory
        raise ModelLoadError.for_model(base_model, exc) from exc
