"""The tokenizer of a base model, without creating a client (renderers need it to build data)."""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=8)
def get_tokenizer(base_model: str):
    """``"tiny"`` -> the embedded byte-level tokenizer; otherwise ``AutoTokenizer`` by id or directory."""
    if base_model == "tiny":
        from cookbook.backend.local.tiny import build_tiny_tokenizer

        return build_tiny_tokenizer()
    import transformers

    return transformers.AutoTokenizer.from_pretrained(os.path.expanduser(base_model))
