"""Gemma 3 instruct format (`<start_of_turn>user|model ... <end_of_turn>`).

Matches the official Gemma 3 template byte for byte:

- BOS, then one `<start_of_turn>{role}\\n{content}<end_of_turn>\\n` per message, content trimmed,
  `model` for the assistant role. A first system message has no turn of its own: its text (not
  trimmed) and a blank line open the first turn after it.
- After the optional system message the roles must alternate user/assistant starting with a user
  message (the template raises otherwise; so does the renderer). A system message elsewhere takes
  an assistant's place in that order and gets a `system` turn, as in the template.
- Generation prompt `<start_of_turn>model\\n`; stop token `<end_of_turn>`.
- Gemma 3 has no tool-call or reasoning format: tools and tool calls raise ValueError, thinking is
  ignored (the template has no field for it).
"""

from __future__ import annotations

from renderers.base import Message, Renderer, Rendering, ToolSpec, assistant_message, text_content, tool_calls_of


class Gemma3Renderer(Renderer):
    name = "gemma3"
    required_special_tokens = ("<start_of_turn>", "<end_of_turn>")
    end_of_turn = ("<end_of_turn>",)

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        if tools:
            raise ValueError("gemma3 has no tool declaration format")
        out.add(self.tokenizer.bos_token or "")
        start = 1 if messages and messages[0]["role"] == "system" else 0
        for k, i in enumerate(range(start, len(messages))):
            message = messages[i]
            if (message["role"] == "user") != (k % 2 == 0):
                raise ValueError("gemma3 needs roles to alternate user/assistant/... after the optional system message")
            if tool_calls_of(message):
                raise ValueError("gemma3 has no tool call format")
            role = "model" if message["role"] == "assistant" else message["role"]
            out.add(f"<start_of_turn>{role}\n", i)
            if k == 0 and start:
                out.add(text_content(messages[0]) + "\n\n", 0, output=True)
            out.add(text_content(message).strip() + "<end_of_turn>", i, output=True)
            out.add("\n", i)
        if add_generation_prompt:
            out.add("<start_of_turn>model\n")

    def _parse(self, body: str, terminator: str) -> Message:
        return assistant_message(body)
