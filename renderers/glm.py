"""GLM-4.5 / GLM-4.5-Air / GLM-4.6 format (`[gMASK]<sop>`, `<|user|>` / `<|assistant|>` roles,
`<think>` blocks, XML-ish tool calls).

Matches the official GLM-4.6 template (the 4.5 models use the same format) byte for byte:

- `[gMASK]<sop>`, then a tools system turn when tools are given, then every message:
  `<|system|>\\n{content}`, `<|user|>\\n{content}` (with `/nothink` appended when thinking is
  disabled and the content does not already end with it), `<|assistant|>` + body, and tool results
  as `\\n<tool_response>\\n{result}\\n</tool_response>` blocks after one `<|observation|>` per run of
  results. No turn has an end-of-turn token.
- An assistant body is `\\n<think>{reasoning}</think>` (reasoning stripped) when the message comes
  after the last user message and has reasoning, else `\\n<think></think>`; then `\\n{content}`
  (stripped, only when not blank); then each call as `\\n<tool_call>{name}\\n` +
  `<arg_key>{key}</arg_key>\\n<arg_value>{value}</arg_value>\\n` per argument + `</tool_call>`,
  string values written as they are and other values as JSON. Content without `thinking` that
  contains `</think>` is split there, as the template does.
- The model ends its turn by emitting the next role token: `<|user|>` or `<|observation|>` are the
  stop tokens (with `<|endoftext|>`), and each is trained as the end of the assistant turn it
  follows. A conversation that ends with an assistant turn therefore has no end token for that turn
  (the template writes none).

Variants: `glm45` (thinking; generation prompt `<|assistant|>`) and `glm45_disable_thinking` (the
template with `enable_thinking=False`: `/nothink` on user turns, generation prompt
`<|assistant|>\\n<think></think>`: what a turn shares with it is prompt, weight 0).

Parsing: tool-call values that read as JSON are decoded (so a string argument such as `"21"` comes
back as the number 21: the format does not distinguish them).
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

EMPTY_THINK = "\n<think></think>"
STOPS = ("<|user|>", "<|observation|>", "<|endoftext|>")

TOOLS_HEADER = (
    "<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_FOOTER = (
    "</tools>\n\nFor each function call, output the function name and arguments within the following XML format:\n"
    "<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}</arg_value>\n"
    "<arg_key>{arg-key-2}</arg_key>\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>"
)


def split_reasoning(message: Message) -> tuple[str, str]:
    """(reasoning, content) as the template derives them from `thinking` or inline `</think>`."""
    content = text_content(message)
    thinking = thinking_of(message)
    if thinking is not None:
        return thinking, content
    if "</think>" in content:
        reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
        return reasoning, content.split("</think>")[-1].lstrip("\n")
    return "", content


def glm_tool_call_text(call: ToolCall) -> str:
    text = "\n<tool_call>" + call["function"]["name"] + "\n"
    for key, value in (arguments_object(call) or {}).items():
        written = value if isinstance(value, str) else tojson(value)
        text += f"<arg_key>{key}</arg_key>\n<arg_value>{written}</arg_value>\n"
    return text + "</tool_call>"


_CALL_RE = re.compile(r"<tool_call>([^\n<]*)\n((?:<arg_key>.*?</arg_key>\n<arg_value>.*?</arg_value>\n)*)</tool_call>",
                      re.DOTALL)
_ARG_RE = re.compile(r"<arg_key>(.*?)</arg_key>\n<arg_value>(.*?)</arg_value>\n", re.DOTALL)


def split_glm_tool_calls(body: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of `[\\n]{content}(\\n<tool_call>{name}\\n<arg_key>..</tool_call>)*`. Raises ParseError."""
    start = body.find("<tool_call>")
    if start < 0:
        if "</tool_call>" in body or "<arg_key>" in body:
            raise ParseError("tool call markers outside a tool call")
        return body.removeprefix("\n"), []
    content = body[:start].removeprefix("\n").removesuffix("\n")
    calls = []
    rest = body[start:]
    while rest:
        match = _CALL_RE.match(rest)
        if not match or not match.group(1):
            raise ParseError(f"malformed GLM tool call {rest[:80]!r}")
        arguments = {key: _value(value) for key, value in _ARG_RE.findall(match.group(2))}
        calls.append(make_tool_call(match.group(1), tojson(arguments), f"call_{len(calls)}"))
        rest = rest[match.end() :]
        if rest and not rest.startswith("\n<tool_call>"):
            raise ParseError(f"text after a tool call: {rest[:80]!r}")
        rest = rest[1:]
    return content, calls


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class Glm45Renderer(Renderer):
    name = "glm45"
    required_special_tokens = ("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>")
    optional_special_tokens = ("<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>",
                               "<arg_value>", "</arg_value>", "<tool_response>", "</tool_response>", "<|endoftext|>")
    end_of_turn = STOPS
    enable_thinking: bool = True

    def __init__(self, tokenizer):
        super().__init__(tokenizer)
        self.end_of_turn = tuple(t for t in STOPS if t in self._special_ids)  # type: ignore[misc]

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        out.add("[gMASK]<sop>")
        if tools:
            out.add(TOOLS_HEADER + "".join(tojson(tool) + "\n" for tool in tools) + TOOLS_FOOTER)
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        for i, message in enumerate(messages):
            role = message["role"]
            previous_is_assistant = i > 0 and messages[i - 1]["role"] == "assistant"
            if role == "user":
                # The role token that ends the assistant turn before it is that turn's end token.
                out.add("<|user|>", i - 1 if previous_is_assistant else i, output=previous_is_assistant)
                out.add("\n", i)
                content = text_content(message)
                if not self.enable_thinking and not content.endswith("/nothink"):
                    content += "/nothink"
                out.add(content, i, output=True)
            elif role == "system":
                out.add("<|system|>\n", i)
                out.add(text_content(message), i, output=True)
            elif role == "tool":
                if i == 0 or messages[i - 1]["role"] != "tool":
                    out.add("<|observation|>", i - 1 if previous_is_assistant else i, output=previous_is_assistant)
                out.add("\n<tool_response>\n" + text_content(message) + "\n</tool_response>", i, output=True)
            elif role == "assistant":
                self._render_assistant(out, i, message, keep_reasoning=i > last_user)
        if add_generation_prompt:
            out.add("<|assistant|>" + ("" if self.enable_thinking else EMPTY_THINK))

    def _render_assistant(self, out: Rendering, i: int, message: Message, keep_reasoning: bool) -> None:
        out.add("<|assistant|>", i)
        reasoning, content = split_reasoning(message)
        think = "\n<think>" + reasoning.strip() + "</think>" if keep_reasoning and reasoning else EMPTY_THINK
        if not self.enable_thinking:
            # What the turn shares with the generation prompt (`\n<think></think>`) is prompt.
            shared = EMPTY_THINK if think == EMPTY_THINK else "\n<think>"
            out.add(shared, i)
            think = think[len(shared) :]
        body = think + ("\n" + content.strip() if content.strip() else "")
        body += "".join(glm_tool_call_text(call) for call in tool_calls_of(message))
        out.add(body, i, output=True)

    def _parse(self, body: str, terminator: str) -> Message:
        thinking = None
        if "</think>" in body:
            reasoning, body = body.split("</think>", 1)
            thinking = reasoning.lstrip("\n").removeprefix("<think>").strip() or None
        elif "<think>" in body:
            raise ParseError("unclosed <think> block")
        content, calls = split_glm_tool_calls(body)
        return assistant_message(content, thinking, calls)


class Glm45DisableThinkingRenderer(Glm45Renderer):
    name = "glm45_disable_thinking"
    enable_thinking = False
