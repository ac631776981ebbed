"""Chat formats: messages <-> tokens, training weights, stop sequences and response parsing.

Each family renders a conversation exactly as the model's official chat template does (the tests
check this byte for byte against the templates), but builds token ids directly, so training data
and sampling prompts never go through a template at run time.

What lives here: `base` (message types, `TrainOnWhat`, the `Renderer` base class and shared
helpers), one module per family (`role_colon`, `tiny`, `qwen3`, `llama3`, `deepseek`, `kimi`,
`gpt_oss`), `registry` (`get_renderer`, the model -> renderer table) and `openai_compat`.

Dependencies: tinker types, transformers / tokenizers. Nothing else of this project is imported
(in particular not `cookbook`).
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
from renderers.openai_compat import from_openai_message, from_openai_messages, to_openai_message, to_openai_messages
from renderers.registry import (
    MODEL_RENDERERS,
    get_recommended_renderer_name,
    get_renderer,
    register_renderer,
    renderer_names,
)

__all__ = [
    "MODEL_RENDERERS",
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
