"""`role_colon`: a plain-text dialogue format for base (non-chat) models.

    [BOS]System: {content}\\n\\nUser: {content}\\n\\nAssistant: {content}\\n\\n ... Assistant:

Each turn is `{Role}: {content}\\n\\n`; the header `{Role}:` is prompt, ` {content}\\n\\n` the body.
The BOS token is written when the tokenizer defines one. The model stops at the string
`\\n\\nUser:` (the start of the next user turn); a sampled turn also counts as complete when it
ends with `\\n\\n` or the EOS token. There is no official template: `CHAT_TEMPLATE` states the
format as a Jinja chat template (usable for serving) and the tests check the renderer against it.
Thinking is ignored; tool calls and tool declarations are not supported (ValueError).
"""

from __future__ import annotations

from renderers.base import Message, Renderer, Rendering, ToolSpec, assistant_message, text_content, tool_calls_of

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- message['role'] | capitalize + ': ' + message['content'] + '\\n\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)

STOP = "\n\nUser:"


class RoleColonRenderer(Renderer):
    name = "role_colon"

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        if tools:
            raise ValueError("role_colon has no tool declaration format")
        if self.tokenizer.bos_token:
            out.add(self.tokenizer.bos_token)
        for i, message in enumerate(messages):
            if tool_calls_of(message):
                raise ValueError("role_colon has no tool call format")
            out.add(message["role"].capitalize() + ":", i)
            out.add(" " + text_content(message) + "\n\n", i, output=True)
        if add_generation_prompt:
            out.add("Assistant:")

    def get_stop_sequences(self) -> list[str]:
        return [STOP]

    def _find_end(self, text: str) -> tuple[str, str] | None:
        candidates = [(text.find(STOP), STOP)] if STOP in text else []
        eos = self.tokenizer.eos_token
        if eos and eos in text:
            candidates.append((text.find(eos), eos))
        if candidates:
            index, marker = min(candidates)
            return text[:index], marker
        if text.endswith("\n\n"):
            return text[:-2], "\n\n"
        return None

    def _parse(self, body: str, terminator: str) -> Message:
        return assistant_message(body.removeprefix(" "))
