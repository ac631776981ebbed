"""Kimi K2 Instruct format (`<|im_user|>` / `<|im_assistant|>` / `<|im_system|>`, `<|im_middle|>`).

Matches the official Kimi-K2 template byte for byte:

- Tool declarations are a `tool_declare` system turn holding the tools as JSON, before everything.
- A conversation that does not start with a system message gets the default system turn
  `You are a helpful assistant`.
- Tool calls are `<|tool_calls_section_begin|>` + `<|tool_call_begin|>functions.{name}:{index}
  <|tool_call_argument_begin|>{arguments}<|tool_call_end|>`... after the content. The template
  writes the id from the name and the call's index in its message (the message's `id`s are not
  used; parsing returns those ids), and applies `tojson` to the arguments, so the renderer decodes
  JSON-string arguments first (passing a string to the template would double-encode it).
- Tool results are `<|im_system|>tool<|im_middle|>## Return of {tool_call_id}\\n{result}`, where
  `\\n` is a literal backslash and `n`: that is what the template text produces.
- Thinking is ignored (Kimi K2 Instruct has no thinking format).
"""

from __future__ import annotations

import re

from renderers.base import (
    Message,
    ParseError,
    Renderer,
    Rendering,
    ToolCall,
    ToolSpec,
    arguments_object,
    assistant_message,
    make_tool_call,
    parse_json_arguments,
    text_content,
    tojson,
    tool_calls_of,
)

SECTION_BEGIN, SECTION_END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
CALL_BEGIN, ARGS_BEGIN, CALL_END = "<|tool_call_begin|>", "<|tool_call_argument_begin|>", "<|tool_call_end|>"

HEADERS = {
    "system": "<|im_system|>system<|im_middle|>",
    "user": "<|im_user|>user<|im_middle|>",
    "assistant": "<|im_assistant|>assistant<|im_middle|>",
    "tool": "<|im_system|>tool<|im_middle|>",
}
DEFAULT_SYSTEM = "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|>"

_ID_RE = re.compile(r"(?:functions\.)?(.+?)(?::\d+)?")


class KimiK2Renderer(Renderer):
    name = "kimi_k2"
    required_special_tokens = (
        "<|im_system|>", "<|im_user|>", "<|im_assistant|>", "<|im_middle|>", "<|im_end|>",
        SECTION_BEGIN, SECTION_END, CALL_BEGIN, ARGS_BEGIN, CALL_END,
    )  # fmt: skip
    end_of_turn = ("<|im_end|>",)

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        if tools:
            out.add("<|im_system|>tool_declare<|im_middle|>" + tojson(tools) + "<|im_end|>")
        for i, message in enumerate(messages):
            role = message["role"]
            if i == 0 and role != "system":
                out.add(DEFAULT_SYSTEM)
            out.add(HEADERS[role], i)
            content = text_content(message)
            calls = tool_calls_of(message)
            if role == "assistant" and calls:
                body = content + SECTION_BEGIN
                for k, call in enumerate(calls):
                    call_id = f"functions.{call['function']['name']}:{k}"
                    body += CALL_BEGIN + call_id + ARGS_BEGIN + tojson(arguments_object(call)) + CALL_END
                body += SECTION_END
            elif role == "tool":
                body = "## Return of " + message.get("tool_call_id", "") + "\\n" + content
            else:
                body = content
            out.add(body + "<|im_end|>", i, output=True)
        if add_generation_prompt:
            out.add(HEADERS["assistant"])

    def _parse(self, body: str, terminator: str) -> Message:
        content, calls = split_kimi_tool_calls(body)
        return assistant_message(content, tool_calls=calls)


def split_kimi_tool_calls(body: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of `content[<|tool_calls_section_begin|>...<|tool_calls_section_end|>]`;
    call ids are the ones written (`functions.{name}:{index}`). Raises ParseError."""
    if SECTION_BEGIN not in body:
        if any(t in body for t in (SECTION_END, CALL_BEGIN, ARGS_BEGIN, CALL_END)):
            raise ParseError("tool call markers outside a tool call section")
        return body, []
    content, section = body.split(SECTION_BEGIN, 1)
    section = section.rstrip()
    if not section.endswith(SECTION_END):
        raise ParseError("unterminated tool call section")
    inner = section[: -len(SECTION_END)]
    raws = inner.split(CALL_END)
    if len(raws) < 2 or raws[-1].strip():
        raise ParseError("malformed tool call section")
    calls = []
    for raw in raws[:-1]:
        raw = raw.strip()
        if not raw.startswith(CALL_BEGIN) or ARGS_BEGIN not in raw:
            raise ParseError(f"malformed tool call {raw!r}")
        call_id, arguments = raw[len(CALL_BEGIN) :].split(ARGS_BEGIN, 1)
        call_id = call_id.strip()
        name = _ID_RE.fullmatch(call_id).group(1) if call_id else ""
        if not name:
            raise ParseError("tool call without a name")
        calls.append(make_tool_call(name, parse_json_arguments(arguments), call_id))
    return content, calls
