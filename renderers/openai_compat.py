"""Conversion between renderer messages and OpenAI chat-completions messages.

OpenAI-compatible servers (vLLM, SGLang, DeepSeek's API) return reasoning as `reasoning_content`
(some as `reasoning`); that is where `thinking` goes and comes from. `developer` messages become
`system` messages. Only text content is supported.
"""

from __future__ import annotations

from typing import Any

from renderers.base import Message, ToolCall, arguments_text, check_messages

_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")


def from_openai_message(message: dict[str, Any]) -> Message:
    """An OpenAI chat message (dict) as a renderer message."""
    role = "system" if message["role"] == "developer" else message["role"]
    content = message.get("content")
    result: Message = {"role": role, "content": "" if content is None else content}
    if isinstance(content, list):
        result["content"] = [{"type": "text", "text": part["text"]} for part in _text_parts(content)]
    reasoning = next((message[k] for k in _REASONING_KEYS if message.get(k) is not None), None)
    if reasoning is not None:
        result["thinking"] = reasoning
    if message.get("tool_calls"):
        result["tool_calls"] = [_tool_call(call) for call in message["tool_calls"]]
    for key in ("tool_call_id", "name"):
        if message.get(key) is not None:
            result[key] = message[key]
    check_messages([result])
    return result


def to_openai_message(message: Message) -> dict[str, Any]:
    """A renderer message as an OpenAI chat message (thinking as `reasoning_content`)."""
    result: dict[str, Any] = {"role": message["role"], "content": message.get("content", "")}
    if message.get("thinking") is not None:
        result["reasoning_content"] = message["thinking"]
    if message.get("tool_calls"):
        result["tool_calls"] = [_tool_call(call) for call in message["tool_calls"]]
    for key in ("tool_call_id", "name"):
        if message.get(key) is not None:
            result[key] = message[key]
    return result


def from_openai_messages(messages: list[dict[str, Any]]) -> list[Message]:
    return [from_openai_message(m) for m in messages]


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    return [to_openai_message(m) for m in messages]


def _text_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for part in parts:
        if part.get("type") != "text":
            raise ValueError(f"only text content parts are supported, got {part.get('type')!r}")
    return parts


def _tool_call(call: dict[str, Any]) -> ToolCall:
    function = call["function"]
    return {
        "id": call.get("id") or "",
        "type": "function",
        "function": {"name": function["name"], "arguments": arguments_text(call)},
    }
