"""Llama 3.x Instruct format (header ids, `<|eot_id|>`).

Matches the official Llama 3.1 / 3.2 / 3.3 templates byte for byte (without `builtin_tools`):

- Every conversation starts with BOS and a system turn holding `Cutting Knowledge Date: December
  2023` and `Today Date: {date}`, then the system prompt. The date is `date`: default
  "26 Jul 2024", the 3.1 and 3.3 templates' default; the 3.2 template writes today's date, so
  pin `date` to what you serve with. `date=None` means today, formatted like the 3.2 template.
- Content is stripped of surrounding whitespace (the template's `trim`), so a parsed turn comes
  back stripped.
- Tool declarations go into the first message after the system prompt, as the template's default
  `tools_in_user_message` does, with `Environment: ipython` in the system turn.
- A tool call is rendered as `{"name": ..., "parameters": ...}`; the template supports exactly one
  call per message (more raise ValueError) and drops the message's content.
- Tool results are `ipython` turns whose content is JSON-encoded (a string result is quoted).
- Thinking is ignored (the template has no field for it).
"""

from __future__ import annotations

import json
import re
from datetime import datetime

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

DEFAULT_DATE = "26 Jul 2024"

_CALL_RE = re.compile(r'\{"name": "([^"\\]*)", "parameters": (.*)\}', re.DOTALL)


def llama_tools_text(tools: list[ToolSpec]) -> str:
    return (
        "Given the following functions, please respond with a JSON for a function call "
        "with its proper arguments that best answers the given prompt.\n\n"
        'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
        "Do not use variables.\n\n" + "".join(tojson(tool, indent=4) + "\n\n" for tool in tools)
    )


class Llama3Renderer(Renderer):
    name = "llama3"
    required_special_tokens = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
    end_of_turn = ("<|eot_id|>",)

    def __init__(self, tokenizer, date: str | None = DEFAULT_DATE):
        super().__init__(tokenizer)
        self.date = date

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        out.add("<|begin_of_text|>")
        rest = list(enumerate(messages))
        system_index, system = None, ""
        if rest and rest[0][1]["role"] == "system":
            system_index, system = 0, text_content(messages[0]).strip()
            rest = rest[1:]
        date = self.date if self.date is not None else datetime.now().strftime("%d %b %Y")
        out.add("<|start_header_id|>system<|end_header_id|>\n\n", system_index)
        out.add(("Environment: ipython\n" if tools else "")
                + f"Cutting Knowledge Date: December 2023\nToday Date: {date}\n\n")
        out.add(system + "<|eot_id|>", system_index, output=True)

        if tools:
            if not rest:
                raise ValueError("llama3 puts tool declarations in the first user message, but there is none")
            (first, message), rest = rest[0], rest[1:]
            out.add("<|start_header_id|>user<|end_header_id|>\n\n", first)
            out.add(llama_tools_text(tools))
            out.add(text_content(message).strip() + "<|eot_id|>", first, output=True)

        for i, message in rest:
            role = message["role"]
            calls = tool_calls_of(message)
            if calls:
                if len(calls) != 1:
                    raise ValueError("llama3 supports exactly one tool call per message")
                call = calls[0]["function"]
                out.add("<|start_header_id|>assistant<|end_header_id|>\n\n", i)
                body = '{"name": "' + call["name"] + '", "parameters": ' + tojson(arguments_object(calls[0])) + "}"
                out.add(body + "<|eot_id|>", i, output=True)
            elif role == "tool":
                out.add("<|start_header_id|>ipython<|end_header_id|>\n\n", i)
                out.add(tojson(text_content(message)) + "<|eot_id|>", i, output=True)
            else:
                out.add(f"<|start_header_id|>{role}<|end_header_id|>\n\n", i)
                out.add(text_content(message).strip() + "<|eot_id|>", i, output=True)

        if add_generation_prompt:
            out.add("<|start_header_id|>assistant<|end_header_id|>\n\n")

    def _parse(self, body: str, terminator: str) -> Message:
        content, calls = split_llama3_tool_call(body)
        return assistant_message(content, tool_calls=calls)


def split_llama3_tool_call(body: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of a turn: a turn that starts with `{"name"` is one JSON tool call
    (`{"name": ..., "parameters": ...}`) and has no content; other turns are stripped content."""
    text = body.strip()
    if not text.startswith('{"name"'):
        return text, []
    match = _CALL_RE.fullmatch(text)
    if match:
        return "", [make_tool_call(match.group(1), parse_json_arguments(match.group(2)), "call_0")]
    try:
        call = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParseError(f"tool call is not JSON: {text!r}") from e
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or "parameters" not in call:
        raise ParseError(f"tool call needs a name and parameters: {text!r}")
    return "", [make_tool_call(call["name"], tojson(call["parameters"]), "call_0")]
