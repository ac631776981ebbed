"""The embedded `tiny` model's format: plain ChatML.

The tiny tokenizer's chat template (`CHAT_TEMPLATE`, below) renders every message as
`<|im_start|>{role}\\n{content}<|im_end|>\\n` and knows nothing else. The renderer matches it byte
for byte and carries the richer fields inside the content, in Qwen3's notation, so that the
template renders the same text for the flattened messages (`flatten_content`):

- assistant thinking, when non-empty: `<think>\\n{thinking}\\n</think>\\n\\n{content}` (kept in every
  turn; there is no history stripping);
- tool calls: `\\n<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>` after the content;
- tool declarations: Qwen3's tools text in the system turn (one is added when there is none);
- tool results: a `tool` turn holding the result text.
"""

from __future__ import annotations

from renderers.base import Message, Renderer, Rendering, ToolSpec, text_content, thinking_of, tool_calls_of
from renderers.qwen3 import parse_qwen_turn, render_tools_system_turn, think_block, tool_calls_text

CHAT_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "{{- '<|im_start|>assistant\\n' -}}\n"
    "{%- endif -%}"
)


def flatten_content(message: Message) -> str:
    """The content string the tiny template sees for a message."""
    content = text_content(message)
    if message["role"] != "assistant":
        return content
    thinking = thinking_of(message)
    body = think_block(thinking, content) if thinking else content
    return body + tool_calls_text(content, tool_calls_of(message))


class TinyRenderer(Renderer):
    name = "tiny"
    required_special_tokens = ("<|im_start|>", "<|im_end|>")
    optional_special_tokens = ("<think>", "</think>", "<tool_call>", "</tool_call>")
    end_of_turn = ("<|im_end|>",)

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        start = 0
        if tools:
            render_tools_system_turn(out, messages, tools)
            start = 1 if messages and messages[0]["role"] == "system" else 0
        for i in range(start, len(messages)):
            out.add(f"<|im_start|>{messages[i]['role']}\n", i)
            out.add(flatten_content(messages[i]) + "<|im_end|>", i, output=True)
            out.add("\n", i)
        if add_generation_prompt:
            out.add("<|im_start|>assistant\n")

    def _parse(self, body: str, terminator: str) -> Message:
        return parse_qwen_turn(body)
