"""MiniMax-M2 format (`]~b]{role}\\n ... [e~[`, `<think>` blocks, `<minimax:tool_call>` XML calls).

Matches the official MiniMax-M2 template:

- `]~!b[]~b]system\\n` + the first system message's content (or `You are a helpful assistant.` when
  there is none or it is empty) + the tool section when tools are given + `[e~[\\n`. Later system
  messages are not rendered.
- `]~b]user\\n{content}[e~[\\n`; `]~b]ai\\n` + body + `[e~[\\n`; tool results as one
  `]~b]tool` turn per run of results, each `\\n<response>{result}</response>`, then `[e~[\\n`. A tool
  result must follow an assistant message with tool calls (the template raises; so does the renderer).
- The assistant body: `<think>\\n{reasoning}\\n</think>\\n\\n` when the message comes after the last
  user message and has reasoning, the content, then `\\n<minimax:tool_call>\\n` + per call
  `<invoke name="{name}">\\n` + `<parameter name="{key}">{value}</parameter>\\n` per argument
  (strings as they are, other values as JSON) + `</invoke>\\n`, then `</minimax:tool_call>`.
  Content without `thinking` that contains `</think>` is split there (reasoning and content
  stripped of newlines), as the official template does.
- Generation prompt `]~b]ai\\n<think>\\n`: a turn that opens with `<think>\\n` shares it with the
  prompt (weight 0); a turn without reasoning starts right after `]~b]ai\\n`. Stop token `[e~[`.

The tests check it against Unsloth's version of the template (llama.cpp's vendored copy), which
writes a newline between `</minimax:tool_call>` and `[e~[` and leaves inline `<think>` content as
written (its split runs in a loop whose variables do not leave the loop); both are stated in the
test's expected text. Tool-call values that read as JSON are decoded when parsing.
"""

from __future__ import annotations

import json
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
    text_content,
    thinking_of,
    tojson,
    tool_calls_of,
)

CALL_OPEN, CALL_CLOSE = "<minimax:tool_call>", "</minimax:tool_call>"
DEFAULT_SYSTEM = "You are a helpful assistant."


def tools_text(tools: list[ToolSpec]) -> str:
    listing = "".join("<tool>" + tojson(tool.get("function", tool)) + "</tool>\n" for tool in tools)
    return (
        "\n\n# Tools\nYou may call one or more tools to assist with the user query.\n"
        "Here are the tools available in JSONSchema format:\n\n<tools>\n" + listing + "</tools>\n\n"
        "When making tool calls, use XML format to invoke tools and pass parameters:\n\n" + CALL_OPEN
        + '\n<invoke name="tool-name-1">\n<parameter name="param-key-1">param-value-1</parameter>\n'
        '<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n' + CALL_CLOSE
    )


def split_reasoning(message: Message) -> tuple[str, str]:
    content = text_content(message)
    thinking = thinking_of(message)
    if thinking is not None:
        return thinking, content
    if "</think>" in content:
        reasoning = content.split("</think>")[0].strip("\n").split("<think>")[-1].strip("\n")
        return reasoning, content.split("</think>")[-1].strip("\n")
    return "", content


def minimax_calls_text(calls: list[ToolCall]) -> str:
    text = "\n" + CALL_OPEN + "\n"
    for call in calls:
        text += f'<invoke name="{call["function"]["name"]}">\n'
        for key, value in (arguments_object(call) or {}).items():
            text += f'<parameter name="{key}">{value if isinstance(value, str) else tojson(value)}</parameter>\n'
        text += "</invoke>\n"
    return text + CALL_CLOSE


_INVOKE_RE = re.compile(r'<invoke name="([^"]*)">\n((?:<parameter name="[^"]*">.*?</parameter>\n)*)</invoke>\n',
                        re.DOTALL)
_PARAM_RE = re.compile(r'<parameter name="([^"]*)">(.*?)</parameter>\n', re.DOTALL)


def split_minimax_tool_calls(body: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of `{content}\\n<minimax:tool_call>\\n<invoke ...>...</minimax:tool_call>`."""
    if CALL_OPEN not in body:
        if CALL_CLOSE in body:
            raise ParseError(f"{CALL_CLOSE} without {CALL_OPEN}")
        return body, []
    content, section = body.split(CALL_OPEN, 1)
    section = section.rstrip("\n")
    if not section.endswith(CALL_CLOSE):
        raise ParseError("unterminated tool call section")
    section = section[: -len(CALL_CLOSE)].removeprefix("\n")
    calls, pos = [], 0
    for match in _INVOKE_RE.finditer(section):
        if match.start() != pos:
            raise ParseError("text between tool calls")
        arguments = {key: _value(value) for key, value in _PARAM_RE.findall(match.group(2))}
        calls.append(make_tool_call(match.group(1), tojson(arguments), f"call_{len(calls)}"))
        pos = match.end()
    if not calls or pos != len(section):
        raise ParseError("malformed tool call section")
    return content.removesuffix("\n"), calls


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class MiniMaxM2Renderer(Renderer):
    name = "minimax_m2"
    required_special_tokens = ("]~!b[", "]~b]", "[e~[")
    optional_special_tokens = ("<think>", "</think>", CALL_OPEN, CALL_CLOSE)
    end_of_turn = ("[e~[",)

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        has_system = bool(messages) and messages[0]["role"] == "system"
        system = text_content(messages[0]) if has_system else ""
        owner = 0 if has_system and system else None
        out.add("]~!b[]~b]system\n", owner)
        out.add(system or DEFAULT_SYSTEM, owner, output=owner is not None)
        if tools:
            out.add(tools_text(tools))
        out.add("[e~[\n", owner)
        offset = 1 if has_system else 0
        rest = messages[offset:]
        last_user = max((k for k, m in enumerate(rest) if m["role"] == "user"), default=-1)
        last_had_calls = False
        for k, message in enumerate(rest):
            i, role = k + offset, message["role"]
            if role == "assistant":
                out.add("]~b]ai\n", i)
                reasoning, content = split_reasoning(message)
                body = ""
                if reasoning and k > last_user:
                    out.add("<think>\n", i)  # shared with the generation prompt
                    body = reasoning + "\n</think>\n\n"
                body += content
                calls = tool_calls_of(message)
                if calls:
                    body += minimax_calls_text(calls)
                last_had_calls = bool(calls)
                out.add(body + "[e~[", i, output=True)
                out.add("\n", i)
            elif role == "tool":
                if not last_had_calls:
                    raise ValueError("minimax_m2: a tool result must follow an assistant message with tool calls")
                if k == 0 or rest[k - 1]["role"] != "tool":
                    out.add("]~b]tool", i)
                out.add("\n<response>" + text_content(message) + "</response>", i, output=True)
                if k == len(rest) - 1 or rest[k + 1]["role"] != "tool":
                    out.add("[e~[", i, output=True)
                    out.add("\n", i)
            elif role == "user":
                out.add("]~b]user\n", i)
                out.add(text_content(message) + "[e~[", i, output=True)
                out.add("\n", i)
        if add_generation_prompt:
            out.add("]~b]ai\n<think>\n")

    def _parse(self, body: str, terminator: str) -> Message:
        thinking = None
        if "</think>" in body:
            reasoning, body = body.split("</think>", 1)
            thinking = reasoning.lstrip("\n").removeprefix("<think>").strip("\n") or None
            body = body.removeprefix("\n\n")
        elif "<think>" in body:
            raise ParseError("unclosed <think> block")
        content, calls = split_minimax_tool_calls(body)
        return assistant_message(content, thinking, calls)
