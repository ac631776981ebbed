"""Render a Jinja chat template exactly as `transformers`' `apply_chat_template` does.

The environment is the one transformers builds for chat templates: sandboxed (immutable), with
`trim_blocks` / `lstrip_blocks`, loop controls, a `{% generation %}` tag (it only marks text, so it
renders its body), a `tojson` filter that keeps non-ASCII characters and key order,
`raise_exception(message)`, `strftime_now(format)`, and `dict` / `namespace` globals. Messages go
to the template as transformers hands them over: keys whose value is None are dropped, and a
message's reasoning is visible as both `reasoning_content` and `thinking`. The template also sees
the tokenizer's special tokens (`bos_token`, `eos_token`, ...) and any template options
(`enable_thinking`, `reasoning_effort`, ...).

Imports nothing of this project.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

_REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: renders its body (transformers uses it to mark
    assistant text; the spans are found here by rendering, so the mark is not needed)."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Callable[[], str]) -> str:
        return caller()


class _Namespace(jinja2.utils.Namespace):
    """`namespace(...)` without underscore-prefixed attributes (as transformers restricts it)."""

    def __init__(*args: Any, **kwargs: Any) -> None:
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"chat templates cannot set underscore attributes ({name!r})")


class _Dict:
    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


@lru_cache(maxsize=64)
def compile_template(source: str) -> jinja2.Template:
    """The compiled template (cached by source). Raises jinja2.TemplateSyntaxError."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["dict"] = _Dict()
    env.globals["namespace"] = _Namespace
    return env.from_string(source)


def template_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message as transformers hands it to a template: None values dropped, reasoning aliased."""
    out = {key: value for key, value in message.items() if value is not None}
    reasoning = next((out[k] for k in _REASONING_KEYS if out.get(k) is not None), None)
    if reasoning is not None:
        out = {"thinking": reasoning, **out, "reasoning_content": reasoning}
    return out


def render_template(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    special_tokens: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    **options: Any,
) -> str:
    """The template's text for a conversation. `now` pins what `strftime_now` reads (default: the
    clock). Template errors (including `raise_exception`) propagate as jinja2 exceptions."""
    context: dict[str, Any] = dict(special_tokens or {})
    context.update(options)
    if now is not None:
        context["strftime_now"] = lambda fmt: now.strftime(fmt)
    return compile_template(source).render(
        messages=[template_message(m) for m in messages],
        tools=list(tools) if tools is not None else None,
        documents=None,
        add_generation_prompt=add_generation_prompt,
        **context,
    )
