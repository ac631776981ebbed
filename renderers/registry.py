"""Renderer names -> factories, and Hugging Face model ids -> recommended renderer names.

`auto` picks the family renderer when the model is in `MODEL_RENDERERS` and the chat-template
renderer (`chat_template`, the tokenizer's own template) otherwise; a model that is neither known
nor has a template raises `NoChatTemplateError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import PreTrainedTokenizerBase

from renderers.base import Renderer
from renderers.chat_template import ChatTemplateRenderer, NoChatTemplateError
from renderers.deepseek import DeepSeekV3Renderer, DeepSeekV3ThinkingRenderer
from renderers.deepseek_v32 import DeepSeekV32DisableThinkingRenderer, DeepSeekV32Renderer
from renderers.gemma import Gemma3Renderer
from renderers.glm import Glm45DisableThinkingRenderer, Glm45Renderer
from renderers.gpt_oss import GptOssRenderer
from renderers.kimi import KimiK2Renderer
from renderers.llama3 import Llama3Renderer
from renderers.minimax import MiniMaxM2Renderer
from renderers.mistral import MistralSmallRenderer
from renderers.nemotron import NemotronNanoV2Renderer
from renderers.qwen3 import Qwen3DisableThinkingRenderer, Qwen3InstructRenderer, Qwen3Renderer
from renderers.role_colon import RoleColonRenderer
from renderers.tiny import TinyRenderer

RendererFactory = Callable[..., Renderer]  # (tokenizer, **options) -> Renderer


def _gpt_oss(effort: str) -> RendererFactory:
    return lambda tokenizer, **options: GptOssRenderer(tokenizer, reasoning_effort=effort, **options)


AUTO = "auto"

_RENDERERS: dict[str, RendererFactory] = {
    "chat_template": ChatTemplateRenderer,
    "role_colon": RoleColonRenderer,
    "tiny": TinyRenderer,
    "qwen3": Qwen3Renderer,
    "qwen3_disable_thinking": Qwen3DisableThinkingRenderer,
    "qwen3_instruct": Qwen3InstructRenderer,
    "llama3": Llama3Renderer,
    "deepseekv3": DeepSeekV3Renderer,
    "deepseekv3_thinking": DeepSeekV3ThinkingRenderer,
    "deepseekv32": DeepSeekV32Renderer,
    "deepseekv32_disable_thinking": DeepSeekV32DisableThinkingRenderer,
    "kimi_k2": KimiK2Renderer,
    "glm45": Glm45Renderer,
    "glm45_disable_thinking": Glm45DisableThinkingRenderer,
    "gemma3": Gemma3Renderer,
    "mistral_small": MistralSmallRenderer,
    "nemotron_nano_v2": NemotronNanoV2Renderer,
    "minimax_m2": MiniMaxM2Renderer,
    "gpt_oss": GptOssRenderer,
    # Named reasoning efforts, for configs that only carry a renderer name.
    "gpt_oss_low_reasoning": _gpt_oss("low"),
    "gpt_oss_medium_reasoning": _gpt_oss("medium"),
    "gpt_oss_high_reasoning": _gpt_oss("high"),
}


def get_renderer(name: str, tokenizer: PreTrainedTokenizerBase, *, model_name: str | None = None,
                 **options: Any) -> Renderer:
    """A renderer by name, or `auto` (see `auto_renderer_name`; `model_name` defaults to the
    tokenizer's `name_or_path`). Options go to its constructor (e.g. `date=` for llama3 and
    gpt_oss, `reasoning_effort=` for gpt_oss, template options for chat_template)."""
    if name == AUTO:
        name = auto_renderer_name(model_name if model_name is not None else tokenizer.name_or_path, tokenizer)
    try:
        factory = _RENDERERS[name]
    except KeyError:
        raise ValueError(f"unknown renderer {name!r}; known: {', '.join(renderer_names())}") from None
    return factory(tokenizer, **options)


def auto_renderer_name(model_name: str, tokenizer: PreTrainedTokenizerBase) -> str:
    """The family renderer for a known model, else `chat_template` when the tokenizer has a chat
    template. Raises NoChatTemplateError when it has none."""
    known = _recommended(model_name)
    if known is not None:
        return known
    if getattr(tokenizer, "chat_template", None):
        return "chat_template"
    raise NoChatTemplateError(
        f"model {model_name!r} is not in the renderer table and its tokenizer has no chat template; "
        f"choose a renderer by name (one of {', '.join(renderer_names())})"
    )


def register_renderer(name: str, factory: RendererFactory) -> None:
    """Add a renderer name (e.g. a family defined outside this package)."""
    if name in _RENDERERS:
        raise ValueError(f"renderer {name!r} is already registered")
    _RENDERERS[name] = factory


def renderer_names() -> list[str]:
    """Every name `get_renderer` takes (`auto` included)."""
    return sorted([*_RENDERERS, AUTO])


def _sizes(prefix: str, sizes: list[str], suffix: str = "") -> list[str]:
    return [f"{prefix}{size}{suffix}" for size in sizes]


_QWEN3_SIZES = ["0.6B", "1.7B", "4B", "8B", "14B", "32B", "30B-A3B", "235B-A22B"]
_QWEN3_BASE_SIZES = ["0.6B", "1.7B", "4B", "8B", "14B", "30B-A3B"]
_QWEN3_2507_SIZES = ["4B", "30B-A3B", "235B-A22B"]

#: Hugging Face model id -> recommended renderer name.
MODEL_RENDERERS: dict[str, str] = {
    "tiny": "tiny",
    **{m: "qwen3" for m in _sizes("Qwen/Qwen3-", _QWEN3_SIZES)},
    **{m: "role_colon" for m in _sizes("Qwen/Qwen3-", _QWEN3_BASE_SIZES, "-Base")},
    **{m: "qwen3_instruct" for m in _sizes("Qwen/Qwen3-", _QWEN3_2507_SIZES, "-Instruct-2507")},
    **{
        m: "llama3"
        for m in [
            "meta-llama/Llama-3.1-8B-Instruct",
            "meta-llama/Llama-3.1-70B-Instruct",
            "meta-llama/Llama-3.1-405B-Instruct",
            "meta-llama/Llama-3.2-1B-Instruct",
            "meta-llama/Llama-3.2-3B-Instruct",
            "meta-llama/Llama-3.3-70B-Instruct",
        ]
    },
    **{
        m: "role_colon"
        for m in [
            "meta-llama/Llama-3.1-8B",
            "meta-llama/Llama-3.1-70B",
            "meta-llama/Llama-3.1-405B",
            "meta-llama/Llama-3.2-1B",
            "meta-llama/Llama-3.2-3B",
        ]
    },
    "deepseek-ai/DeepSeek-V3.1": "deepseekv3",
    "deepseek-ai/DeepSeek-V3.1-Terminus": "deepseekv3",
    "deepseek-ai/DeepSeek-V3.1-Base": "role_colon",
    "moonshotai/Kimi-K2-Instruct": "kimi_k2",
    "moonshotai/Kimi-K2-Instruct-0905": "kimi_k2",
    "moonshotai/Kimi-K2-Base": "role_colon",
    "openai/gpt-oss-20b": "gpt_oss",
    "openai/gpt-oss-120b": "gpt_oss",
    "deepseek-ai/DeepSeek-V3.2": "deepseekv32",
    **{m: "glm45" for m in ["zai-org/GLM-4.5", "zai-org/GLM-4.5-Air", "zai-org/GLM-4.6"]},
    **{m: "role_colon" for m in ["zai-org/GLM-4.5-Base", "zai-org/GLM-4.5-Air-Base"]},
    **{m: "gemma3" for m in _sizes("google/gemma-3-", ["1b", "4b", "12b", "27b"], "-it")},
    **{m: "role_colon" for m in _sizes("google/gemma-3-", ["1b", "4b", "12b", "27b"], "-pt")},
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": "mistral_small",
    **{m: "nemotron_nano_v2" for m in ["nvidia/NVIDIA-Nemotron-Nano-9B-v2", "nvidia/NVIDIA-Nemotron-Nano-12B-v2"]},
    "MiniMaxAI/MiniMax-M2": "minimax_m2",
}


def get_recommended_renderer_name(model_name: str) -> str:
    """The renderer to use with a model: its family renderer when the model is in
    `MODEL_RENDERERS` (exact Hugging Face id, case-insensitive), else `auto`."""
    return _recommended(model_name) or AUTO


def _recommended(model_name: str) -> str | None:
    if model_name in MODEL_RENDERERS:
        return MODEL_RENDERERS[model_name]
    by_lower = {m.lower(): r for m, r in MODEL_RENDERERS.items()}
    return by_lower.get(model_name.lower())
