"""Render official chat templates the way transformers' `apply_chat_template` does.

Sandboxed Jinja2 with trim_blocks / lstrip_blocks and loop controls, a `tojson` filter without
ASCII escaping that keeps key order, `raise_exception`, and `strftime_now` pinned to `PINNED_NOW`.
Like transformers 5, a message's reasoning is passed both as `thinking` and `reasoning_content`.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = REPO_ROOT.parent / "shared" / "chat_templates"
VENDORED_DIR = Path(__file__).resolve().parent / "templates"  # always present (see templates/PROVENANCE.md)
PINNED_NOW = datetime(2024, 9, 12, 10, 30)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


@cache
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: PINNED_NOW.strftime(fmt)
    return env.from_string(source)


def load_template(file_name: str) -> str:
    """An official template's source; skips the test when ../shared/chat_templates is absent."""
    path = TEMPLATES_DIR / file_name
    if not path.exists():
        pytest.skip(f"official chat templates not found at {TEMPLATES_DIR}")
    return path.read_text()


def load_vendored_template(file_name: str) -> str:
    """A template vendored under tests/renderers/templates."""
    return (VENDORED_DIR / file_name).read_text()


def alias_reasoning(message: dict[str, Any]) -> dict[str, Any]:
    reasoning = next((message[k] for k in ("reasoning_content", "thinking", "reasoning") if message.get(k) is not None), None)
    if reasoning is None:
        return message
    return {"thinking": reasoning, **message, "reasoning_content": reasoning}


def render_template(
    source: str,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    bos_token: str = "",
    eos_token: str = "",
    **options: Any,
) -> str:
    return _compile(source).render(
        messages=[alias_reasoning(m) for m in messages],
        tools=tools,
        add_generation_prompt=add_generation_prompt,
        bos_token=bos_token,
        eos_token=eos_token,
        **options,
    )
