"""DeepSeek V3.2 format (`<｜User｜>` / `<｜Assistant｜>`, `<think>` switch, DSML tool calls).

DeepSeek V3.2 ships a Python encoder instead of a chat template; the renderer matches llama.cpp's
Jinja port of it (vendored in the tests) byte for byte, except where noted:

- BOS, the system message (first message only; later system messages are not rendered), then the
  tool section when tools are given (after a blank line when there is a system message).
- A user turn is `<｜User｜>{content}<｜Assistant｜>` followed by the thinking switch: `<think>` after
  the last user message in thinking mode, `</think>` otherwise. So the assistant header ends the
  user turn, and an assistant message renders only its body:
  `{reasoning}</think>` (thinking mode, after the last user message), the content, the tool calls,
  `<｜end▁of▁sentence｜>`.
- Tool calls: `\\n\\n<｜DSML｜function_calls>` + `\\n<｜DSML｜invoke name="{name}">\\n` + one
  `<｜DSML｜parameter name="{key}" string="true|false">{value}</｜DSML｜parameter>` per argument
  (joined by newlines; strings as they are, other values as JSON) + `\\n</｜DSML｜invoke>` per call +
  `\\n</｜DSML｜function_calls>`. Tool results: `\\n\\n<function_results>` + `\\n<result>{r}</result>` per
  result + `\\n</function_results>\\n\\n` + the thinking switch, after the last result of a call turn.
- Training weights: `<think>` is prompt. In thinking mode a `</think>` switch that opens an
  assistant turn before the last user message is trained with that turn (the model writes
  `</think>` itself in thinking mode); with thinking disabled it is prompt.
- **Difference:** the generation prompt. The template's `add_generation_prompt` appends
  `<｜User｜>\\n<｜Assistant｜>` + switch even after a user turn that already ends with the assistant
  header; the renderer's prompt after a user or tool turn is the rendering without it (the header
  is already there), and the template's text only after other messages.

Variants: `deepseekv32` (thinking, the template's default) and `deepseekv32_disable_thinking`
(`enable_thinking=False`).
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

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
DSML = "｜DSML｜"
CALLS_OPEN, CALLS_CLOSE = f"<{DSML}function_calls>", f"</{DSML}function_calls>"


def tools_text(tools: list[ToolSpec]) -> str:
    example = (
        f"<{DSML}function_calls>\n<{DSML}invoke name=\"$FUNCTION_NAME\">\n"
        f"<{DSML}parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</{DSML}parameter>\n"
        f"...\n</{DSML}invoke>\n<{DSML}invoke name=\"$FUNCTION_NAME2\">\n...\n</{DSML}invoke>\n</{DSML}function_calls>"
    )
    return (
        "## Tools\n\nYou have access to a set of tools you can use to answer the user's question.\n"
        f"You can invoke functions by writing a \"<{DSML}function_calls>\" block like the following as part of "
        "your reply to the user:\n" + example + "\n\n"
        "String and scalar parameters should be specified as is without any escaping or quotes, while lists and "
        "objects should use JSON format. The \"string\" attribute should be set to \"true\" for string type "
        "parameters and \"false\" for other types (numbers, booleans, arrays, objects).\n\n"
        "If the thinking_mode is enabled, then after function results you should strongly consider outputting a "
        "thinking block. Here is an example:\n\n"
        f"<{DSML}function_calls>\n...\n</{DSML}function_calls>\n\n<function_results>\n...\n</function_results>\n\n"
        "<think>...thinking about results</think>\n\nHere are the functions available in JSONSchema format:\n"
        "<functions>" + "".join("\n" + tojson(tool) for tool in tools) + "\n</functions>"
    )


def dsml_calls_text(calls: list[ToolCall]) -> str:
    text = "\n\n" + CALLS_OPEN
    for call in calls:
        params = [
            f'<{DSML}parameter name="{key}" string="{"true" if isinstance(value, str) else "false"}">'
            f"{value if isinstance(value, str) else tojson(value)}</{DSML}parameter>"
            for key, value in (arguments_object(call) or {}).items()
        ]
        text += f'\n<{DSML}invoke name="{call["function"]["name"]}">\n' + "\n".join(params) + f"\n</{DSML}invoke>"
    return text + "\n" + CALLS_CLOSE


_INVOKE_RE = re.compile(rf'\n<{DSML}invoke name="([^"]*)">\n(.*?)\n</{DSML}invoke>', re.DOTALL)
_PARAM_RE = re.compile(rf'<{DSML}parameter name="([^"]*)" string="(true|false)">(.*?)</{DSML}parameter>', re.DOTALL)


def split_dsml_tool_calls(body: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of `{content}\\n\\n<｜DSML｜function_calls>...</｜DSML｜function_calls>`. Raises ParseError."""
    if CALLS_OPEN not in body:
        if DSML in body:
            raise ParseError("DSML markers outside a function_calls block")
        return body, []
    content, section = body.split(CALLS_OPEN, 1)
    if not section.rstrip().endswith(CALLS_CLOSE):
        raise ParseError("unterminated function_calls block")
    section = section.rstrip()[: -len(CALLS_CLOSE)]
    calls, pos = [], 0
    for match in _INVOKE_RE.finditer(section):
        if section[pos : match.start()].strip():
            raise ParseError("text between tool calls")
        arguments = {}
        for key, is_string, value in _PARAM_RE.findall(match.group(2)):
            try:
                arguments[key] = value if is_string == "true" else json.loads(value)
            except json.JSONDecodeError as e:
                raise ParseError(f"parameter {key!r} is not JSON: {value!r}") from e
        calls.append(make_tool_call(match.group(1), tojson(arguments), f"call_{len(calls)}"))
        pos = match.end()
    if not calls or section[pos:].strip():
        raise ParseError("malformed function_calls block")
    return content.removesuffix("\n\n"), calls


class DeepSeekV32Renderer(Renderer):
    name = "deepseekv32"
    required_special_tokens = (BOS, EOS, "<｜User｜>", "<｜Assistant｜>")
    optional_special_tokens = ("<think>", "</think>")
    end_of_turn = (EOS,)
    thinking: bool = True

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        out.add(BOS)
        has_system = bool(messages) and messages[0]["role"] == "system"
        if has_system:
            out.add(text_content(messages[0]), 0, output=True)
            if tools:
                out.add("\n\n" + tools_text(tools) + "\n")
        elif tools:
            out.add(tools_text(tools) + "\n")
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        ends_with_header = False
        for i in range(1 if has_system else 0, len(messages)):
            message = messages[i]
            role = message["role"]
            if role == "user":
                out.add("<｜User｜>", i)
                out.add(text_content(message), i, output=True)
                out.add("<｜Assistant｜>", i)
                self._switch(out, messages, i, open_thinking=i == last_user)
                ends_with_header = True
            elif role == "tool":
                previous = max(j for j in range(i) if messages[j]["role"] != "tool")
                order = i - previous
                if order == 1:
                    out.add("\n\n<function_results>", i)
                out.add("\n<result>" + text_content(message) + "</result>", i, output=True)
                ends_with_header = False
                if order == len(tool_calls_of(messages[previous])):
                    out.add("\n</function_results>\n\n", i)
                    self._switch(out, messages, i, open_thinking=i >= last_user)
                    ends_with_header = True
            elif role == "assistant":
                body = (thinking_of(message) or "") + "</think>" if self.thinking and i > last_user else ""
                body += text_content(message)
                calls = tool_calls_of(message)
                if calls:
                    body += dsml_calls_text(calls)
                out.add(body + EOS, i, output=True)
                ends_with_header = False
            else:
                ends_with_header = False  # a later system message renders nothing
        if add_generation_prompt and not ends_with_header:
            out.add("<｜User｜>\n<｜Assistant｜>" + ("<think>" if self.thinking else "</think>"))

    def _switch(self, out: Rendering, messages: list[Message], i: int, open_thinking: bool) -> None:
        if self.thinking and open_thinking:
            out.add("<think>", i)
            return
        follows = i + 1 < len(messages) and messages[i + 1]["role"] == "assistant"
        if self.thinking and follows:
            out.add("</think>", i + 1, output=True)  # the model closes (empty) reasoning itself
        else:
            out.add("</think>", i)

    def _parse(self, body: str, terminator: str) -> Message:
        thinking = None
        if self.thinking and "</think>" in body:
            reasoning, body = body.split("</think>", 1)
            thinking = reasoning.removeprefix("<think>") or None
        content, calls = split_dsml_tool_calls(body)
        return assistant_message(content, thinking, calls)


class DeepSeekV32DisableThinkingRenderer(DeepSeekV32Renderer):
    name = "deepseekv32_disable_thinking"
    thinking = False
