"""NVIDIA Nemotron Nano v2 format (`<SPECIAL_10>System`, `<SPECIAL_11>User|Assistant`, `<SPECIAL_12>`).

Matches the official NVIDIA-Nemotron-Nano-9B-v2 template byte for byte, given messages whose
reasoning is written into the content (the template has no reasoning field): a message with
non-empty `thinking` is handed to it as `{thinking}\\n</think>\\n\\n{content}` (`inline_content`).

- `<SPECIAL_10>System\\n` + the first system message (with `/think` and `/no_think` removed,
  stripped) + the tool section when tools are given + `\\n\\n`. Thinking is on unless the last user
  or system message that mentions `/think` or `/no_think` says `/no_think`. Later system messages
  are not rendered.
- `<SPECIAL_11>User\\n{content}\\n` (switches removed, stripped); tool results as one
  `<SPECIAL_11>User\\n<TOOL_RESPONSE>[r1, r2]</TOOL_RESPONSE>\\n\\n` per run of results.
- Assistant turns before the last message: `<SPECIAL_11>Assistant\\n` + the content after its first
  `</think>` (stripped: earlier reasoning is dropped) + tool calls as
  `<TOOLCALL>[{"name": ..., "arguments": ...}, ...]</TOOLCALL>` (after a blank line when there is
  content) + `\\n<SPECIAL_12>\\n\\n`.
- The last message, when it is an assistant message, is written as the model generates it:
  `<SPECIAL_11>Assistant\\n<think>\\n\\n` (`<think></think>` with thinking off) + its inline content
  (stripped) + `\\n<SPECIAL_12>\\n\\n`, and its tool calls as a turn of their own,
  `<SPECIAL_11>Assistant\\n<TOOLCALL>[...]</TOOLCALL>\\n<SPECIAL_12>\\n\\n`, with no think block. A last
  message with neither content nor calls renders nothing. The generation prompt is
  `<SPECIAL_11>Assistant\\n<think>\\n\\n` (or `<think></think>`), followed by the content of a last
  assistant message (continued, as the template does).
- Stop token `<SPECIAL_12>`. The think opening is prompt (weight 0).
"""

from __future__ import annotations

import json

from renderers.base import (
    Message,
    ParseError,
    Renderer,
    Rendering,
    ToolCall,
    ToolSpec,
    arguments_text,
    assistant_message,
    make_tool_call,
    parse_json_arguments,
    text_content,
    thinking_of,
    tojson,
    tool_calls_of,
)

END = "\n<SPECIAL_12>\n\n"
TOOLS_INTRO = "You can use the following tools to assist the user if required:"
TOOLS_OUTRO = (
    "If you decide to call any tool(s), use the following format:\n"
    '<TOOLCALL>[{{"name": "tool_name1", "arguments": "tool_args1"}}, '
    '{{"name": "tool_name2", "arguments": "tool_args2"}}]</TOOLCALL>\n\n'
    "The user will execute tool-calls and return responses from tool(s) in this format:\n"
    '<TOOL_RESPONSE>[{{"tool_response1"}}, {{"tool_response2"}}]</TOOL_RESPONSE>\n\n'
    "Based on the tool responses, you can call additional tools if needed, correct tool calls if any errors are "
    "found, or just respond to the user."
)


def inline_content(message: Message) -> str:
    """The content the template sees: reasoning written before `</think>` when there is some."""
    thinking = thinking_of(message)
    content = text_content(message)
    return thinking + "\n</think>\n\n" + content if thinking else content


def _strip_switches(text: str) -> str:
    return text.replace("/think", "").replace("/no_think", "").strip()


def toolcall_text(calls: list[ToolCall]) -> str:
    items = ['{"name": "' + c["function"]["name"] + '", "arguments": ' + arguments_text(c) + "}" for c in calls]
    return "<TOOLCALL>[" + ", ".join(items) + "]</TOOLCALL>"


def split_nemotron_tool_calls(body: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of `{content}[\\n\\n]<TOOLCALL>[...]</TOOLCALL>`. Raises ParseError."""
    if "<TOOLCALL>" not in body:
        if "</TOOLCALL>" in body:
            raise ParseError("</TOOLCALL> without <TOOLCALL>")
        return body, []
    content, section = body.split("<TOOLCALL>", 1)
    section = section.rstrip()
    if not section.endswith("</TOOLCALL>"):
        raise ParseError("unterminated <TOOLCALL>")
    try:
        items = json.loads(section[: -len("</TOOLCALL>")])
    except json.JSONDecodeError as e:
        raise ParseError(f"<TOOLCALL> is not a JSON list: {section[:80]!r}") from e
    if not isinstance(items, list) or not items:
        raise ParseError("<TOOLCALL> needs a non-empty list")
    calls = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or "arguments" not in item:
            raise ParseError(f"tool call needs a name and arguments: {item!r}")
        arguments = item["arguments"]
        text = parse_json_arguments(arguments) if isinstance(arguments, str) else tojson(arguments)
        calls.append(make_tool_call(item["name"], text, f"call_{k}"))
    return content.removesuffix("\n\n"), calls


class NemotronNanoV2Renderer(Renderer):
    name = "nemotron_nano_v2"
    required_special_tokens = ("<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>")
    optional_special_tokens = ("<think>", "</think>", "<TOOLCALL>", "</TOOLCALL>", "<AVAILABLE_TOOLS>",
                               "</AVAILABLE_TOOLS>", "<TOOL_RESPONSE>", "</TOOL_RESPONSE>")
    end_of_turn = ("<SPECIAL_12>",)

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        thinking = True
        for message in messages:
            if message["role"] in ("user", "system"):
                content = text_content(message)
                if "/think" in content:
                    thinking = True
                elif "/no_think" in content:
                    thinking = False
        opening = "<think>\n\n" if thinking else "<think></think>"

        has_system = bool(messages) and messages[0]["role"] == "system"
        system = _strip_switches(text_content(messages[0])) if has_system else ""
        owner = 0 if has_system else None
        out.add("<SPECIAL_10>System\n", owner)
        out.add(system, owner, output=has_system)
        if tools:
            listing = ", ".join(tojson(tool.get("function", tool)) for tool in tools)
            out.add(("\n\n" if system else "") + TOOLS_INTRO + "\n<AVAILABLE_TOOLS>[" + listing
                    + "]</AVAILABLE_TOOLS>\n\n" + TOOLS_OUTRO)
        out.add("\n\n", owner)

        rest = list(range(1 if has_system else 0, len(messages)))
        last = rest[-1] if rest and messages[rest[-1]]["role"] == "assistant" else None
        if last is not None:
            rest = rest[:-1]
        for k, i in enumerate(rest):
            message, role = messages[i], messages[i]["role"]
            if role == "user":
                out.add("<SPECIAL_11>User\n", i)
                out.add(_strip_switches(text_content(message)), i, output=True)
                out.add("\n", i)
            elif role == "tool":
                first = k == 0 or messages[rest[k - 1]]["role"] != "tool"
                final = k == len(rest) - 1 or messages[rest[k + 1]]["role"] != "tool"
                if first:
                    out.add("<SPECIAL_11>User\n<TOOL_RESPONSE>[", i)
                out.add(text_content(message) + ("" if final else ", "), i, output=True)
                if final:
                    out.add("]</TOOL_RESPONSE>\n\n", i)
            elif role == "assistant":
                content = inline_content(message)
                if content and "</think>" in content:
                    content = content.split("</think>")[1]
                content = content.strip()
                calls = tool_calls_of(message)
                body = content + (("\n\n" if content else "") + toolcall_text(calls) if calls else "")
                out.add("<SPECIAL_11>Assistant\n", i)
                out.add(body + "\n<SPECIAL_12>", i, output=True)
                out.add("\n\n", i)

        final_content = inline_content(messages[last]).strip() if last is not None else ""
        if add_generation_prompt:
            out.add("<SPECIAL_11>Assistant\n" + opening + final_content)
            return
        if last is None:
            return
        if final_content:
            out.add("<SPECIAL_11>Assistant\n" + opening, last)
            out.add(final_content + "\n<SPECIAL_12>", last, output=True)
            out.add("\n\n", last)
        calls = tool_calls_of(messages[last])
        if calls:
            out.add("<SPECIAL_11>Assistant\n", last)
            out.add(toolcall_text(calls) + "\n<SPECIAL_12>", last, output=True)
            out.add("\n\n", last)

    def _parse(self, body: str, terminator: str) -> Message:
        body = body.removesuffix("\n")
        thinking = None
        if "</think>" in body:
            reasoning, body = body.split("</think>", 1)
            thinking = reasoning.lstrip().removeprefix("<think>").strip("\n") or None
            body = body.lstrip("\n")
        elif "<think>" in body:
            raise ParseError("unclosed <think> block")
        content, calls = split_nemotron_tool_calls(body)
        return assistant_message(content, thinking, calls)
