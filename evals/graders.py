"""Graders: compare a model's answer text with the reference answer."""

from __future__ import annotations


def normalize(text: str) -> str:
    return " ".join(text.strip().split())


def exact_match(answer: str, reference: str) -> bool:
    """Equal after trimming and collapsing whitespace."""
    return normalize(answer) == normalize(reference)
