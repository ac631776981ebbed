"""The templates the chat-template renderer is checked on: every template of ../shared/chat_templates
and its community/ folder (skipped when absent) and every vendored family template (always), each
with a tokenizer carrying the format's special tokens, and, where no family renderer states the
format, the text each assistant turn must train, written out here independently of the renderer."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from renderer_targets import TARGETS
from template_oracle import load_template, load_vendored_template
from tokenizer_builders import family_tokenizer

from renderers import ChatTemplateRenderer, text_content


@dataclass(frozen=True)
class TemplateCase:
    id: str
    template: Callable[[], str]  # skips the test when the shared folder is absent
    tokenizer: str
    options: dict[str, Any] = field(default_factory=dict)
    # The trained text of an assistant message (content -> text), for formats no family states;
    # `followed_by_user` tells whether a user message comes next.
    body: Callable[[str, bool], str] | None = None

    def tokenizer_with_template(self):
        tokenizer = copy.copy(family_tokenizer(self.tokenizer))
        tokenizer.chat_template = self.template()
        return tokenizer

    def renderer(self, **kwargs: Any) -> ChatTemplateRenderer:
        return ChatTemplateRenderer(self.tokenizer_with_template(), **self.options, **kwargs)


def _shared(name: str) -> Callable[[], str]:
    return lambda: load_template(name)


def _falcon(content: str, followed_by_user: bool) -> str:
    return " " + content.replace("\r\n", "\n").replace("\n\n", "\n").strip() + ("\n\nUser:" if followed_by_user else "")


# Community formats: how each writes an answer after its generation prompt.
COMMUNITY = {
    "chatml": ("chatml", lambda c, _: c.strip() + "<|im_end|>"),
    "qwen2.5-instruct": ("qwen3", lambda c, _: c + "<|im_end|>"),
    "gemma-it": ("gemma3", lambda c, _: c.strip() + "<end_of_turn>"),
    "mistral-instruct": ("llama2", lambda c, _: " " + c.strip() + "</s>"),
    "llama-2-chat": ("llama2", lambda c, _: " " + c.strip() + " </s>"),
    "phi-3": ("phi3", lambda c, _: c.strip() + "<|end|>"),
    "zephyr": ("zephyr", lambda c, _: c.strip() + "</s>"),
    "vicuna": ("llama2", lambda c, _: " " + c.strip() + "</s>"),
    "alpaca": ("llama2", lambda c, _: c.strip() + "</s>"),
    "falcon-instruct": ("falcon", _falcon),
}

CASES: list[TemplateCase] = [
    TemplateCase("qwen3", _shared("Qwen-Qwen3-0.6B.jinja"), "qwen3"),
    TemplateCase("qwen3-no-thinking", _shared("Qwen-Qwen3-0.6B.jinja"), "qwen3", {"enable_thinking": False}),
    TemplateCase("qwen2.5", _shared("Qwen-Qwen2.5-7B-Instruct.jinja"), "qwen3", body=lambda c, _: c + "<|im_end|>"),
    TemplateCase("llama-3.1", _shared("meta-llama-Llama-3.1-8B-Instruct.jinja"), "llama3"),
    TemplateCase("llama-3.2", _shared("meta-llama-Llama-3.2-3B-Instruct.jinja"), "llama3"),
    TemplateCase("llama-3.3", _shared("meta-llama-Llama-3.3-70B-Instruct.jinja"), "llama3"),
    TemplateCase("deepseek-v3.1", _shared("deepseek-ai-DeepSeek-V3.1.jinja"), "deepseek"),
    TemplateCase("deepseek-v3.1-thinking", _shared("deepseek-ai-DeepSeek-V3.1.jinja"), "deepseek", {"thinking": True}),
    TemplateCase("deepseek-r1-distill", _shared("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"), "deepseek",
                 body=lambda c, _: c.split("</think>")[-1] + "<｜end▁of▁sentence｜>"),
    TemplateCase("kimi-k2", _shared("moonshotai-Kimi-K2.jinja"), "kimi"),
    TemplateCase("gpt-oss", _shared("openai-gpt-oss-120b.jinja"), "gpt_oss", {"reasoning_effort": "medium"}),
    *[TemplateCase(name, _shared(f"community/{name}.jinja"), kind, body=body) for name, (kind, body) in COMMUNITY.items()],
    TemplateCase("glm-4.6", lambda: load_vendored_template("zai-org-GLM-4.6.jinja"), "glm45"),
    TemplateCase("glm-4.6-no-thinking", lambda: load_vendored_template("zai-org-GLM-4.6.jinja"), "glm45", {"enable_thinking": False}),
    TemplateCase("gemma-3", lambda: load_vendored_template("google-gemma-3-it.jinja"), "gemma3"),
    TemplateCase("mistral-small-3.1", lambda: load_vendored_template("mistralai-Mistral-Small-3.1-24B-Instruct-2503.jinja"), "mistral"),
    TemplateCase("nemotron-nano-v2", lambda: load_vendored_template("nvidia-NVIDIA-Nemotron-Nano-9B-v2.jinja"), "nemotron"),
    TemplateCase("deepseek-v3.2", lambda: load_vendored_template("deepseek-ai-DeepSeek-V3.2.jinja"), "deepseek_v32"),
    TemplateCase("deepseek-v3.2-no-thinking", lambda: load_vendored_template("deepseek-ai-DeepSeek-V3.2.jinja"), "deepseek_v32",
                 {"enable_thinking": False}),
    TemplateCase("minimax-m2", lambda: load_vendored_template("MiniMaxAI-MiniMax-M2.jinja"), "minimax"),
]  # fmt: skip


# Family targets the chat-template renderer is compared with (acceptance 2). Not deepseekv3_thinking:
# that family departs from its template on purpose (documented), so the two differ by design.
FAMILY_TARGETS = [t for t in TARGETS if t.renderer not in ("tiny", "role_colon", "deepseekv3_thinking")]


def assistant_bodies(case: TemplateCase, messages: list[dict[str, Any]], trained: list[int]) -> list[str]:
    """The text each trained assistant message must have weight on, for formats stated here."""
    assert case.body is not None
    return [case.body(text_content(messages[i]), i + 1 < len(messages) and messages[i + 1]["role"] == "user")
            for i in trained]
