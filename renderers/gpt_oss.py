"""gpt-oss format (harmony: `<|start|>{header}<|message|>{text}<|end|>`, channels).

Matches the official gpt-oss template byte for byte (without `builtin_tools`):

- A system turn with the model identity, `Knowledge cutoff: 2024-06`, `Current date: {date}` and
  `Reasoning: {reasoning_effort}` (low / medium / high). The template takes the date from the
  clock; here it is `date` (default "2025-08-05", the release date; pin it to what you serve with),
  or today for `date=None`.
- A first system message becomes the developer turn's `# Instructions`; tool declarations are
  rendered there as a TypeScript-like `functions` namespace. Later system messages are dropped,
  as in the template.
- The last assistant message of a training example renders its thinking in the `analysis` channel
  and its content in the `final` channel ending with `<|return|>`. Every other assistant message is
  `final` content ending with `<|end|>`: thinking in history is dropped, as in the template.
- A tool call is `<|start|>assistant to=functions.{name}<|channel|>commentary json<|message|>
  {arguments}<|call|>`, preceded by the message's thinking (or content) as an analysis message
  unless a later assistant message without tool calls follows (the template drops it then). The
  template renders one call per message (more raise ValueError here; the template would silently
  drop them) and rejects content together with thinking (ValueError).
- Tool results are `<|start|>functions.{name} to=assistant<|channel|>commentary<|message|>{result}`
  with the result JSON-encoded; the name is that of the latest tool call.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from renderers.base import (
    Message,
    ParseError,
    Renderer,
    Rendering,
    ToolSpec,
    arguments_object,
    make_tool_call,
    parse_json_arguments,
    text_content,
    thinking_of,
    tojson,
    tool_calls_of,
)

ReasoningEffort = Literal["low", "medium", "high"]
DEFAULT_DATE = "2025-08-05"
MODEL_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."


def system_text(reasoning_effort: str, date: str, has_tools: bool) -> str:
    text = (
        f"{MODEL_IDENTITY}\nKnowledge cutoff: 2024-06\nCurrent date: {date}\n\nReasoning: {reasoning_effort}\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every message."
    )
    if has_tools:
        text += "\nCalls to these tools must go to the commentary channel: 'functions'."
    return text


# -- tool declarations: the template's TypeScript-like rendering, quirks included ---------------

# The template emits these literal runs of its own source indentation in two places.
_NESTED_TYPE_PREFIX = "\n" + " " * 16
_ONE_OF_DEFAULT_PREFIX = " " * 20


def _typescript_type(spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    if kind == "array":
        items = spec.get("items")
        if not items:
            text = "any[]"
        elif items.get("type") in ("string", "number", "integer", "boolean"):
            arrays = {"string": "string[]", "number": "number[]", "integer": "number[]", "boolean": "boolean[]"}
            text = arrays[items["type"]]
        else:
            inner = _typescript_type(items)
            text = "any[]" if inner == "object | object" or len(inner) > 50 else inner + "[]"
        return text + (" | null" if spec.get("nullable") else "")
    if isinstance(kind, (list, tuple)) and kind:
        return " | ".join(kind) if len(kind) > 1 else kind[0]
    if spec.get("oneOf"):
        # The template's "any" shortcut for object variants never fires (its flag is set inside a
        # loop scope), so every variant is listed.
        variants = spec["oneOf"]
        text = ""
        for k, variant in enumerate(variants):
            text += _typescript_type(variant)
            if variant.get("description"):
                text += "// " + variant["description"]
            if "default" in variant:
                text += _ONE_OF_DEFAULT_PREFIX + "// default: " + tojson(variant["default"])
            if k < len(variants) - 1:
                text += " | \n"
        return text
    if kind == "string":
        if spec.get("enum"):
            return '"' + '" | "'.join(spec["enum"]) + '"'
        return "string" + (" | null" if spec.get("nullable") else "")
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "object":
        properties = spec.get("properties")
        if not properties:
            return "object"
        required = spec.get("required") or []
        fields = [
            name + ("" if name in required else "?") + ": " + _NESTED_TYPE_PREFIX + _typescript_type(prop)
            for name, prop in properties.items()
        ]
        return "{\n" + ", ".join(fields) + "}"
    return "any"


def _default_text(spec: dict[str, Any]) -> str:
    default = spec["default"]
    if spec.get("enum") or spec.get("oneOf"):
        if not isinstance(default, str):
            raise ValueError("the gpt-oss template can only write string defaults for enum and oneOf parameters")
        return (", // default: " if spec.get("enum") else "// default: ") + default
    return ", // default: " + tojson(default)


def tools_namespace(tools: list[ToolSpec]) -> str:
    text = "## functions\n\nnamespace functions {\n\n"
    for tool in tools:
        function = tool["function"]
        if "description" not in function:
            raise ValueError(f"the gpt-oss template needs a description for tool {function.get('name')!r}")
        text += "// " + function["description"] + "\n" + "type " + function["name"] + " = "
        parameters = function.get("parameters") or {}
        properties = parameters.get("properties")
        if not properties:
            text += "() => any;\n\n"
            continue
        required = parameters.get("required") or []
        text += "(_: {\n"
        for name, spec in properties.items():
            if spec.get("description"):
                text += "// " + spec["description"] + "\n"
            text += name + ("" if name in required else "?") + ": " + _typescript_type(spec)
            if "default" in spec:
                text += _default_text(spec)
            text += ",\n"
        text += "}) => any;\n\n"
    return text + "} // namespace functions"


# -- the renderer ------------------------------------------------------------------------------

_HEADER_RE = re.compile(r"(?:\s*to=(?P<recipient>[^\s<]+))?\s*<\|channel\|>(?P<channel>\w+)(?P<rest>.*)", re.DOTALL)
_CHANNEL_MARKERS = ("<|channel|>analysis<|message|>", "<|channel|>final<|message|>")


class GptOssRenderer(Renderer):
    name = "gpt_oss"
    required_special_tokens = ("<|start|>", "<|message|>", "<|end|>", "<|channel|>", "<|return|>", "<|call|>")
    optional_special_tokens = ("<|constrain|>",)
    end_of_turn = ("<|return|>", "<|call|>")

    def __init__(self, tokenizer, reasoning_effort: ReasoningEffort = "medium", date: str | None = DEFAULT_DATE):
        super().__init__(tokenizer)
        if reasoning_effort not in ("low", "medium", "high"):
            raise ValueError(f"reasoning_effort must be low, medium or high, not {reasoning_effort!r}")
        self.reasoning_effort = reasoning_effort
        self.date = date

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        date = self.date if self.date is not None else datetime.now().strftime("%Y-%m-%d")
        out.add("<|start|>system<|message|>" + system_text(self.reasoning_effort, date, bool(tools)) + "<|end|>")

        start, developer = 0, ""
        if messages and messages[0]["role"] == "system":
            start, developer = 1, text_content(messages[0])
        if developer or tools:
            owner = 0 if developer else None
            out.add("<|start|>developer<|message|>", owner)
            if developer:
                out.add("# Instructions\n\n" + developer + "\n\n", 0, output=True)
            if tools:
                out.add("# Tools\n\n" + tools_namespace(tools))
            out.add("<|end|>", owner, output=bool(developer))

        last_tool_name = None
        for i in range(start, len(messages)):
            message = messages[i]
            role = message["role"]
            content = text_content(message)
            if role == "assistant":
                thinking = thinking_of(message)
                if any(m in content or m in (thinking or "") for m in _CHANNEL_MARKERS):
                    raise ValueError(
                        "pass analysis text in 'thinking' and final text in 'content', without channel tags")
                calls = tool_calls_of(message)
                out.add("<|start|>assistant", i)
                if calls:
                    if len(calls) > 1:
                        raise ValueError("gpt_oss renders one tool call per message")
                    if content and thinking:
                        raise ValueError("gpt_oss cannot render content and thinking in a message with a tool call")
                    later_final = any(m["role"] == "assistant" and not tool_calls_of(m) for m in messages[i + 1 :])
                    analysis = content or thinking
                    body = ""
                    if analysis and not later_final:
                        body = "<|channel|>analysis<|message|>" + analysis + "<|end|><|start|>assistant"
                    last_tool_name = calls[0]["function"]["name"]
                    body += f" to=functions.{last_tool_name}<|channel|>commentary json<|message|>"
                    body += tojson(arguments_object(calls[0])) + "<|call|>"
                elif i == len(messages) - 1 and not add_generation_prompt:
                    body = ""
                    if thinking is not None:
                        body = "<|channel|>analysis<|message|>" + thinking + "<|end|><|start|>assistant"
                    body += "<|channel|>final<|message|>" + content + "<|return|>"
                else:
                    body = "<|channel|>final<|message|>" + content + "<|end|>"
                    last_tool_name = None
                out.add(body, i, output=True)
            elif role == "tool":
                if last_tool_name is None:
                    raise ValueError("a tool message must follow an assistant message with a tool call")
                out.add(f"<|start|>functions.{last_tool_name} to=assistant<|channel|>commentary<|message|>", i)
                out.add(tojson(content) + "<|end|>", i, output=True)
            elif role == "user":
                out.add("<|start|>user<|message|>", i)
                out.add(content + "<|end|>", i, output=True)

        if add_generation_prompt:
            out.add("<|start|>assistant")

    def _parse(self, body: str, terminator: str) -> Message:
        # The generation prompt ends with "<|start|>assistant"; the turn may hold several messages.
        segments = body.split("<|start|>")
        thinking, content, calls = None, "", []
        for k, segment in enumerate(segments):
            if k > 0:
                if not segment.startswith("assistant"):
                    raise ParseError(f"unexpected message header {segment[:30]!r}")
                segment = segment[len("assistant") :]
            header, sep, text = segment.partition("<|message|>")
            match = _HEADER_RE.fullmatch(header)
            if not sep or not match:
                raise ParseError(f"malformed message header {header[:50]!r}")
            if k < len(segments) - 1:
                if not text.endswith("<|end|>"):
                    raise ParseError("message not closed by <|end|>")
                text = text[: -len("<|end|>")]
            if "<|end|>" in text or "<|message|>" in text:
                raise ParseError("malformed message body")
            recipient, channel = match.group("recipient"), match.group("channel")
            if recipient is None and "to=" in match.group("rest"):
                recipient = match.group("rest").split("to=", 1)[1].split()[0].split("<")[0]
            if recipient:
                name = recipient.removeprefix("functions.")
                calls.append(make_tool_call(name, parse_json_arguments(text), f"call_{len(calls)}"))
            elif channel == "analysis":
                thinking = text
            elif channel in ("final", "commentary"):
                content = text
            else:
                raise ParseError(f"unknown channel {channel!r}")
        if terminator == "<|call|>" and not calls:
            raise ParseError("<|call|> without a tool call")
        message: Message = {"role": "assistant", "content": content}
        if thinking is not None:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = calls
        return message
