"""Chat formats: messages <-> tokens, training weights, stop sequences and response parsing.

Each family renders a conversation exactly as the model's official chat template does (the tests
check this byte for byte against the templates), but builds token ids directly, so training data
and sampling prompts never go through a template at run time.

Any other chat model is rendered by its own Jinja chat template (`chat_template`:
`ChatTemplateRenderer`, exact by construction), and `get_renderer("auto", tokenizer)` picks the
family renderer for known models and the chat-template renderer otherwise.

What lives here: `base` (message types, `TrainOnWhat`, the `Renderer` base class and shared
helpers), one module per family (`role_colon`, `tiny`, `qwen3`, `llama3`, `deepseek`, `kimi`,
`gpt_oss`, ...), `template_env` (Jinja rendering as transformers does it), `chat_template`,
`tool_formats` (the tool-call formats parsers know), `registry` (`get_renderer`, `auto`, the
model -> renderer table) and `openai_compat`.

Dependencies: tinker types, transformers / tokenizers, jinja2. Nothing else of this project is
imported (in particular not `cookbook`).
"""

from renderers.base import (
    Message,
    ParseError,
    Renderer,
    TextPart,
    ToolCall,
    ToolSpec,
    TrainOnWhat,
    text_content,
)
from renderers.chat_template import ChatTemplateError, ChatTemplateRenderer, NoChatTemplateError
from renderers.openai_compat import from_openai_message, from_openai_messages, to_openai_message, to_openai_messages
from renderers.registry import (
    MODEL_RENDERERS,
    auto_renderer_name,
    get_recommended_renderer_name,
    get_renderer,
    register_renderer,
    renderer_names,
)

__all__ = [
    "MODEL_RENDERERS",
    "ChatTemplateError",
    "ChatTemplateRenderer",
    "NoChatTemplateError",
    "auto_renderer_name",
    "Message",
    "ParseError",
    "Renderer",
    "TextPart",
    "ToolCall",
    "ToolSpec",
    "TrainOnWhat",
    "from_openai_message",
    "from_openai_messages",
    "get_recommended_renderer_name",
    "get_renderer",
    "register_renderer",
    "renderer_names",
    "text_content",
    "to_openai_message",
    "to_openai_messages",
]
