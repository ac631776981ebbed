"""Qwen3 chat format (ChatML with <think> blocks and JSON <tool_call> blocks).

Matches the official Qwen3 template (`Qwen-Qwen3-0.6B.jinja`, shared by the Qwen3 dense and MoE
models) byte for byte, including what it does to thinking:

- An assistant message after the last user query keeps its thinking as
  `<think>\\n{thinking}\\n</think>\\n\\n{content}`; the last message of the conversation always gets
  the block, empty when it has no thinking. Thinking is stripped of surrounding newlines and the
  content that follows of leading newlines, as the template does.
- Assistant messages before the last user query lose their thinking (the template drops it).
  Turns of one agentic episode (assistant, tool results, assistant, ...) all come after the last
  query, so they keep it.
- An assistant message without `thinking` whose content contains `</think>` is split there, as the
  template does for inline reasoning.
- Tool results become user turns of `<tool_response>` blocks; consecutive results share one turn.

Variants: `qwen3` (thinking; generation prompt `<|im_start|>assistant\\n`),
`qwen3_disable_thinking` (the template with `enable_thinking=False`: the generation prompt carries
the empty think block, which is therefore part of the prompt, weight 0, for the last assistant
turn; before real reasoning the `<think>\\n` it shares with that prompt is prompt too) and
`qwen3_instruct` (Qwen3-2507 Instruct models: no think blocks at all, thinking ignored).
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
    arguments_text,
    assistant_message,
    make_tool_call,
    parse_json_arguments,
    text_content,
    thinking_of,
    tojson,
    tool_calls_of,
)

EMPTY_THINK = "<think>\n\n</think>\n\n"


def qwen_tools_text(tools: list[ToolSpec]) -> str:
    """The tool declarations Qwen3 puts in the system turn (after the system prompt, if any)."""
    listing = "".join("\n" + tojson(tool) for tool in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
        + listing
        + "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
        'within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, '
        '"arguments": <args-json-object>}\n</tool_call>'
    )


def render_tools_system_turn(out: Rendering, messages: list[Message], tools: list[ToolSpec]) -> None:
    """The system turn carrying tool declarations, after the system prompt when messages[0] is one."""
    has_system = bool(messages) and messages[0]["role"] == "system"
    owner = 0 if has_system else None
    out.add("<|im_start|>system\n", owner)
    if has_system:
        out.add(text_content(messages[0]) + "\n\n", 0, output=True)
    out.add(qwen_tools_text(tools))
    out.add("<|im_end|>", owner, output=has_system)
    out.add("\n", owner)


def split_inline_thinking(message: Message) -> tuple[str, str]:
    """(reasoning, content) as the template derives them: the `thinking` field when set, else
    reasoning written inline in the content before `</think>`."""
    content = text_content(message)
    thinking = thinking_of(message)
    if thinking is not None:
        return thinking, content
    if "</think>" in content:
        reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
        return reasoning, content.split("</think>")[-1].lstrip("\n")
    return "", content


def think_block(reasoning: str, content: str) -> str:
    return "<think>\n" + reasoning.strip("\n") + "\n</think>\n\n" + content.lstrip("\n")


def tool_calls_text(content: str, calls: list[ToolCall]) -> str:
    text = ""
    for k, call in enumerate(calls):
        if k > 0 or content:
            text += "\n"
        text += '<tool_call>\n{"name": "' + call["function"]["name"] + '", "arguments": '
        text += arguments_text(call) + "}\n</tool_call>"
    return text


_CALL_RE = re.compile(r'\{"name": "([^"\\]*)", "arguments": (.*)\}', re.DOTALL)


def parse_qwen_turn(body: str, think_blocks: bool = True) -> Message:
    """Parse `[<think>\\n...\\n</think>\\n\\n]content[\\n<tool_call>...</tool_call>...]`
    (with `think_blocks=False`, think tags are plain content)."""
    thinking = None
    if think_blocks and "</think>" in body:
        reasoning, body = body.split("</think>", 1)
        if reasoning.lstrip().startswith("<think>"):
            reasoning = reasoning.lstrip()[len("<think>") :]
        thinking = reasoning.strip("\n") or None
        body = body.lstrip("\n")
    elif think_blocks and "<think>" in body:
        raise ParseError("unclosed <think> block")
    content, calls = split_qwen_tool_calls(body)
    return assistant_message(content, thinking, calls)


def split_qwen_tool_calls(body: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of `content[\n<tool_call>\n{json}\n</tool_call>...]`. Raises ParseError."""
    start = body.find("<tool_call>")
    if start < 0:
        if "</tool_call>" in body:
            raise ParseError("</tool_call> without <tool_call>")
        return body, []
    content = body[:start]
    if content.endswith("\n"):
        content = content[:-1]
    calls = []
    rest = body[start:]
    while rest:
        if not rest.startswith("<tool_call>") or "</tool_call>" not in rest:
            raise ParseError("malformed <tool_call> block")
        inner, rest = rest[len("<tool_call>") :].split("</tool_call>", 1)
        calls.append(_parse_call(inner.strip(), len(calls)))
        rest = rest.lstrip("\n") if rest.strip() else ""
    return content, calls


def _parse_call(text: str, index: int) -> ToolCall:
    match = _CALL_RE.fullmatch(text)
    if match:
        return make_tool_call(match.group(1), parse_json_arguments(match.group(2)), f"call_{index}")
    try:
        call = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParseError(f"tool call is not JSON: {text!r}") from e
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or "arguments" not in call:
        raise ParseError(f"tool call needs a name and arguments: {text!r}")
    arguments = call["arguments"]
    return make_tool_call(call["name"], arguments if isinstance(arguments, str) else tojson(arguments), f"call_{index}")


class Qwen3Renderer(Renderer):
    name = "qwen3"
    required_special_tokens = ("<|im_start|>", "<|im_end|>")
    optional_special_tokens = (
        "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
    end_of_turn = ("<|im_end|>",)
    #: False renders the template with enable_thinking=False (empty think block in the prompt).
    enable_thinking: bool = True
    #: False for the 2507 instruct models, whose template has no think blocks.
    think_blocks: bool = True

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        has_system = bool(messages) and messages[0]["role"] == "system"
        if tools:
            render_tools_system_turn(out, messages, tools)
        elif has_system:
            out.add("<|im_start|>system\n", 0)
            out.add(text_content(messages[0]) + "<|im_end|>", 0, output=True)
            out.add("\n", 0)

        last_query = _last_query_index(messages)
        n = len(messages)
        for i, message in enumerate(messages):
            role = message["role"]
            if role == "user" or (role == "system" and i > 0):
                out.add(f"<|im_start|>{role}\n", i)
                out.add(text_content(message) + "<|im_end|>", i, output=True)
                out.add("\n", i)
            elif role == "assistant":
                self._render_assistant(out, i, message, keep_thinking=i > last_query, is_last=i == n - 1)
            elif role == "tool":
                if i == 0 or messages[i - 1]["role"] != "tool":
                    out.add("<|im_start|>user", i)
                out.add("\n<tool_response>\n" + text_content(message) + "\n</tool_response>", i, output=True)
                if i == n - 1 or messages[i + 1]["role"] != "tool":
                    out.add("<|im_end|>", i, output=True)
                    out.add("\n", i)

        if add_generation_prompt:
            out.add("<|im_start|>assistant\n")
            if not self.enable_thinking:
                out.add(EMPTY_THINK)

    def _render_assistant(self, out: Rendering, i: int, message: Message, keep_thinking: bool, is_last: bool) -> None:
        out.add("<|im_start|>assistant\n", i)
        reasoning, content = split_inline_thinking(message)
        if not self.think_blocks:
            # The 2507 instruct template writes the content as given, with no reasoning handling.
            body = content = text_content(message)
        elif keep_thinking and (is_last or reasoning):
            body = think_block(reasoning, content)
            if not self.enable_thinking:
                # With thinking disabled the generation prompt ends with the empty block: what the turn
                # shares with it is prompt (all of it, or "<think>\n" before real reasoning).
                shared = EMPTY_THINK if body.startswith(EMPTY_THINK) else "<think>\n"
                out.add(shared, i)
                body = body[len(shared) :]
        else:
            body = content
        body += tool_calls_text(content, tool_calls_of(message))
        out.add(body + "<|im_end|>", i, output=True)
        out.add("\n", i)

    def _parse(self, body: str, terminator: str) -> Message:
        return parse_qwen_turn(body, self.think_blocks)


class Qwen3DisableThinkingRenderer(Qwen3Renderer):
    name = "qwen3_disable_thinking"
    enable_thinking = False


class Qwen3InstructRenderer(Qwen3Renderer):
    name = "qwen3_instruct"
    think_blocks = False


def _last_query_index(messages: list[Message]) -> int:
    """Index of the last user message that is not a wrapped tool response (template semantics)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "user":
            content = text_content(messages[i])
            if not (content.startswith("<tool_response>") and content.endswith("</tool_response>")):
                return i
    return len(messages) - 1
