"""Mistral Small 3.1 format (`[SYSTEM_PROMPT]`, `[INST] ... [/INST]`, `[TOOL_CALLS]`, `[TOOL_RESULTS]`).

Matches the official Mistral-Small-3.1-24B-Instruct-2503 template byte for byte:

- BOS, `[SYSTEM_PROMPT]{system}[/SYSTEM_PROMPT]`: the first message when it is a system message,
  else Mistral's default system prompt, which states today's date (`date=` pins it, as
  "YYYY-MM-DD"; default: today, as the template does). With tools, the template's parallel
  tool-call instructions come first (joined with no separator: the template's line continuations
  produce none).
- `[INST]{content}[/INST]` per user message (not stripped); with tools, `[AVAILABLE_TOOLS] [...]
  [/AVAILABLE_TOOLS]` right before every user message equal to the last one.
- An assistant message is its content and EOS, right after `[/INST]` (there is no assistant header
  and no generation prompt). A message with tool calls is `[TOOL_CALLS] [` + each call's
  `{"name": ..., "arguments": ..., "id": "<last 9 characters of its id>"}` + `]` + EOS; the template
  drops its content. Tool results: `[TOOL_RESULTS] {"content": {result}, "call_id": "<last 9>"}
  [/TOOL_RESULTS]`, the result as written. Call ids must have at least 9 characters.
- After the optional system message, the messages that are neither tool calls nor tool results
  must alternate user/assistant starting with a user message; other roles raise (all as the
  template does).
- No reasoning format: thinking is ignored.
"""

from __future__ import annotations

import json
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
    text_content,
    tojson,
    tool_calls_of,
)

PARALLEL_TOOLS_PROMPT = (
    "You are a helpful assistant that can call tools. If you call one or more tools, format them in a single JSON "
    "array or objects, where each object is a tool call, not as separate objects outside of an array or multiple "
    'arrays. Use the format [{"name": tool call name, "arguments": tool call arguments}, additional tool calls] if '
    "you call more than one tool. If you call tools, do not attempt to interpret them or otherwise provide a "
    "response until you receive a tool call result that you can interpret for the user."
)


def default_system_prompt(date: str) -> str:
    return (
        "You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI, a French startup headquartered "
        f"in Paris.Your knowledge base was last updated on 2023-10-01. The current date is {date}.When you're not "
        "sure about some information, you say that you don't have the information and don't make up anything.If the "
        "user's question is not clear, ambiguous, or does not provide enough context for you to accurately answer the "
        "question, you do not try to answer it right away and you rather ask the user to clarify their request (e.g. "
        '"What are some good restaurants around me?" => "Where are you?" or "When is the next flight to Tokyo" => '
        '"Where do you travel from?")'
    )


def available_tools_text(tools: list[ToolSpec]) -> str:
    entries = []
    for tool in tools:
        fields = []
        for key, value in tool["function"].items():
            if key == "return":
                continue
            fields.append(f'"{key}": "{value}"' if isinstance(value, str) else f'"{key}": {tojson(value)}')
        entries.append('{"type": "function", "function": {' + ", ".join(fields) + "}}")
    return "[AVAILABLE_TOOLS] [" + ", ".join(entries) + "][/AVAILABLE_TOOLS]"


def _short_id(value: str | None, what: str) -> str:
    if not value or len(value) < 9:
        raise ValueError(f"mistral_small needs {what} ids of at least 9 characters, got {value!r}")
    return value[-9:]


def split_mistral_tool_calls(body: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of a turn: `[TOOL_CALLS] [{"name", "arguments", "id"}, ...]` or plain content."""
    if "[TOOL_CALLS]" not in body:
        return body, []
    content, section = body.split("[TOOL_CALLS]", 1)
    try:
        items = json.loads(section)
    except json.JSONDecodeError as e:
        raise ParseError(f"[TOOL_CALLS] is not a JSON list: {section[:80]!r}") from e
    if not isinstance(items, list) or not items:
        raise ParseError("[TOOL_CALLS] needs a non-empty list")
    calls = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or "arguments" not in item:
            raise ParseError(f"tool call needs a name and arguments: {item!r}")
        arguments = item["arguments"]
        calls.append(make_tool_call(item["name"], arguments if isinstance(arguments, str) else tojson(arguments),
                                    str(item.get("id", f"call_{k}"))))
    return content, calls


class MistralSmallRenderer(Renderer):
    name = "mistral_small"
    required_special_tokens = ("[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]")
    optional_special_tokens = ("[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
                               "[/TOOL_RESULTS]")

    def __init__(self, tokenizer, date: str | None = None):
        super().__init__(tokenizer)
        if not tokenizer.eos_token:
            raise ValueError("mistral_small needs a tokenizer with an EOS token")
        self.date = date
        self.end_of_turn = (tokenizer.eos_token,)  # type: ignore[misc]

    def get_stop_sequences(self) -> list[int]:
        return [self.tokenizer.eos_token_id]

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        eos = self.tokenizer.eos_token
        out.add(self.tokenizer.bos_token or "")
        start = 1 if messages and messages[0]["role"] == "system" else 0
        if start:
            system = text_content(messages[0])
        else:
            system = default_system_prompt(self.date or datetime.now().strftime("%Y-%m-%d"))
        if tools:
            system = PARALLEL_TOOLS_PROMPT + system
        owner = 0 if start else None
        out.add("[SYSTEM_PROMPT]", owner)
        out.add(system + "[/SYSTEM_PROMPT]", owner, output=owner is not None)

        plain = [m for m in messages[start:] if m["role"] != "tool" and not tool_calls_of(m)]
        for k, message in enumerate(plain):
            if (message["role"] == "user") != (k % 2 == 0):
                raise ValueError("mistral_small needs user/assistant messages to alternate, starting with a user")
        users = [m for m in messages[start:] if m["role"] == "user"]
        last_user = (users[-1]["role"], text_content(users[-1]), users[-1].get("name")) if users else None

        for i in range(start, len(messages)):
            message = messages[i]
            role, calls = message["role"], tool_calls_of(message)
            if role == "user":
                if tools and (role, text_content(message), message.get("name")) == last_user:
                    out.add(available_tools_text(tools))
                out.add("[INST]", i)
                out.add(text_content(message), i, output=True)
                out.add("[/INST]", i)
            elif calls:
                items = []
                for call in calls:
                    function = {"name": call["function"]["name"], "arguments": arguments_object(call)}
                    items.append(tojson(function)[:-1] + ', "id": "' + _short_id(call.get("id"), "tool call") + '"}')
                out.add("[TOOL_CALLS] [" + ", ".join(items) + "]" + eos, i, output=True)
            elif role == "assistant":
                out.add(text_content(message) + eos, i, output=True)
            elif role == "tool":
                call_id = _short_id(message.get("tool_call_id"), "tool result call")
                out.add("[TOOL_RESULTS] ", i)
                out.add('{"content": ' + text_content(message) + ', "call_id": "' + call_id + '"}', i, output=True)
                out.add("[/TOOL_RESULTS]", i)
            else:
                raise ValueError("mistral_small supports a system message only at the start")

    def _parse(self, body: str, terminator: str) -> Message:
        content, calls = split_mistral_tool_calls(body)
        if calls and content.strip():
            raise ParseError("text before [TOOL_CALLS]")
        return assistant_message("" if calls else content, tool_calls=calls)
