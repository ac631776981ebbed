"""DeepSeek V3.1 format (`<｜User｜>`, `<｜Assistant｜>`, `</think>` switch).

Matches the official DeepSeek-V3.1 template byte for byte, except where noted:

- BOS, then every system message (joined by a blank line) at the very start, wherever the system
  messages are in the conversation.
- `deepseekv3` is the template with `thinking=False`: an assistant turn after a user message opens
  with `<｜Assistant｜></think>`, and the generation prompt is the same. Thinking is dropped from
  every turn, as the template does (it also cuts anything up to `</think>` from the content).
- `deepseekv3_thinking` is the template with `thinking=True`: the generation prompt ends with
  `<｜Assistant｜><think>`. **Difference:** the template renders past assistant turns with `</think>`
  and no reasoning, also the final one, so training on reasoning is impossible with it. This
  renderer renders the assistant turn that answers the last user message as the thinking
  generation prompt followed by what the model generates, `<｜Assistant｜><think>{thinking}</think>
  {content}<｜end▁of▁sentence｜>`; turns before the last user message are rendered as the template
  does (`</think>{content}`, reasoning dropped).
- Tool calls: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{name}<｜tool▁sep｜>{arguments}<｜tool▁call▁end｜>...
  <｜tool▁calls▁end｜>` after the content. Tool results: `<｜tool▁output▁begin｜>{result}<｜tool▁output▁end｜>`.
  The assistant turn that follows a tool result has no `<｜Assistant｜>` header and no think switch,
  and the generation prompt after a tool result is empty, as in the template.
- **Difference:** the template ignores `tools`. This renderer declares them in the system prompt
  (`tools_system_prompt`, the tool section described in the DeepSeek-V3.1 model card), as if it
  were one more system message after the others.
"""

from __future__ import annotations

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

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
CALLS_BEGIN, CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
CALL_BEGIN, CALL_END, CALL_SEP = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>"
OUTPUT_BEGIN, OUTPUT_END = "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"


def tools_system_prompt(tools: list[ToolSpec]) -> str:
    """Tool declarations for the system prompt."""
    sections = []
    for tool in tools:
        function = tool.get("function", tool)
        sections.append(
            f"### {function['name']}\nDescription: {function.get('description', '')}\n\n"
            f"Parameters: {tojson(function.get('parameters', {}))}\n"
        )
    return (
        "## Tools\nYou have access to the following tools:\n\n"
        + "\n".join(sections)
        + "\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n"
        + f"{CALLS_BEGIN}{CALL_BEGIN}tool_call_name{CALL_SEP}tool_call_arguments{CALL_END}"
        + f"{{additional_tool_calls}}{CALLS_END}\n\n"
        + "Where:\n\n"
        + "- `tool_call_name` must be an exact match to one of the available tools\n"
        + "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema\n"
        + "- For multiple tool calls, chain them directly without separators or spaces"
    )


class DeepSeekV3Renderer(Renderer):
    name = "deepseekv3"
    required_special_tokens = (
        BOS, EOS, "<｜User｜>", "<｜Assistant｜>",
        CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, CALL_SEP, OUTPUT_BEGIN, OUTPUT_END,
    )  # fmt: skip
    optional_special_tokens = ("<think>", "</think>")
    end_of_turn = (EOS,)
    thinking: bool = False

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        out.add(BOS)
        system_parts = [(i, text_content(m)) for i, m in enumerate(messages) if m["role"] == "system"]
        if tools:
            system_parts.append((None, tools_system_prompt(tools)))
        for k, (i, text) in enumerate(system_parts):
            out.add(("\n\n" if k else "") + text, i, output=i is not None)

        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        after_user = after_tool = False
        for i, message in enumerate(messages):
            role = message["role"]
            if role == "user":
                after_user, after_tool = True, False
                out.add("<｜User｜>", i)
                out.add(text_content(message), i, output=True)
            elif role == "assistant":
                self._render_assistant(out, i, message, after_user, after_tool, final_round=i > last_user)
                after_user = after_tool = False
            elif role == "tool":
                after_user, after_tool = False, True
                out.add(OUTPUT_BEGIN + text_content(message) + OUTPUT_END, i, output=True)

        if add_generation_prompt and after_user:
            out.add("<｜Assistant｜>" + ("<think>" if self.thinking else "</think>"))

    def _render_assistant(self, out: Rendering, i: int, message: Message, after_user: bool, after_tool: bool,
                          final_round: bool) -> None:
        content = text_content(message)
        calls = tool_calls_of(message)
        show_thinking = self.thinking and after_user and final_round
        if after_user:
            out.add("<｜Assistant｜>" + ("<think>" if show_thinking else "</think>"), i)
        body = ""
        if show_thinking:
            body = (thinking_of(message) or "") + "</think>"
        if calls:
            body += content + CALLS_BEGIN
            for call in calls:
                body += CALL_BEGIN + call["function"]["name"] + CALL_SEP + arguments_text(call) + CALL_END
            body += CALLS_END
        elif after_tool or "</think>" not in content:
            body += content
        else:
            body += content.split("</think>", 1)[1]
        out.add(body + EOS, i, output=True)

    def _parse(self, body: str, terminator: str) -> Message:
        thinking = None
        if "</think>" in body:
            thinking, body = body.split("</think>", 1)
            thinking = thinking.removeprefix("<think>") or None
        content, calls = split_deepseek_tool_calls(body)
        return assistant_message(content, thinking, calls)


def split_deepseek_tool_calls(body: str) -> tuple[str, list[ToolCall]]:
    """(content, calls) of `content[<｜tool▁calls▁begin｜>...<｜tool▁calls▁end｜>]`. Raises ParseError."""
    if CALLS_BEGIN not in body:
        if any(t in body for t in (CALLS_END, CALL_BEGIN, CALL_END, CALL_SEP)):
            raise ParseError("tool call markers outside a tool call section")
        return body, []
    content, section = body.split(CALLS_BEGIN, 1)
    section = section.rstrip()
    if not section.endswith(CALLS_END):
        raise ParseError("unterminated tool call section")
    calls = []
    for k, raw in enumerate(section[: -len(CALLS_END)].split(CALL_END)[:-1]):
        if not raw.startswith(CALL_BEGIN) or CALL_SEP not in raw:
            raise ParseError(f"malformed tool call {raw!r}")
        name, arguments = raw[len(CALL_BEGIN) :].split(CALL_SEP, 1)
        calls.append(make_tool_call(name, parse_json_arguments(arguments), f"call_{k}"))
    if not calls or not section[: -len(CALLS_END)].endswith(CALL_END):
        raise ParseError("malformed tool call section")
    return content, calls


class DeepSeekV3ThinkingRenderer(DeepSeekV3Renderer):
    name = "deepseekv3_thinking"
    thinking = True
