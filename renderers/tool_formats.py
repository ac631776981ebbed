"""The tool-call formats the renderers can parse, by name: `split(text) -> (content, calls)`.

Each split function takes the text of an assistant turn after its reasoning (without the
end-of-turn marker) and returns the content and the tool calls it writes, raising `ParseError`
when the calls are malformed. The families use their own; the chat-template renderer picks the
one that parses its template's probe call back (`renderers.chat_template`). Listed most specific
first: the Llama 3 format (a bare JSON object) comes last.
"""

from __future__ import annotations

from collections.abc import Callable

from renderers.base import ToolCall
from renderers.deepseek import split_deepseek_tool_calls
from renderers.deepseek_v32 import split_dsml_tool_calls
from renderers.glm import split_glm_tool_calls
from renderers.kimi import split_kimi_tool_calls
from renderers.llama3 import split_llama3_tool_call
from renderers.minimax import split_minimax_tool_calls
from renderers.mistral import split_mistral_tool_calls
from renderers.nemotron import split_nemotron_tool_calls
from renderers.qwen3 import split_qwen_tool_calls

SplitToolCalls = Callable[[str], tuple[str, list[ToolCall]]]

TOOL_CALL_FORMATS: dict[str, SplitToolCalls] = {
    "deepseek_v3": split_deepseek_tool_calls,
    "deepseek_dsml": split_dsml_tool_calls,
    "kimi_k2": split_kimi_tool_calls,
    "minimax": split_minimax_tool_calls,
    "mistral": split_mistral_tool_calls,
    "nemotron": split_nemotron_tool_calls,
    "glm": split_glm_tool_calls,
    "qwen": split_qwen_tool_calls,
    "llama3_json": split_llama3_tool_call,
}
