"""The test oracle renders templates exactly as transformers' apply_chat_template does."""

from __future__ import annotations

import pytest
from renderer_corpus import CONVERSATIONS
from renderer_targets import TARGETS
from template_oracle import render_template
from transformers.utils.chat_template_utils import render_jinja_template

# Templates that do not read the clock (transformers' strftime_now cannot be pinned).
CLOCK_FREE = ["qwen3", "qwen3_disable_thinking", "llama3-3.1", "deepseekv3", "deepseekv3_thinking", "kimi_k2",
              "glm45", "glm45_disable_thinking", "gemma3", "nemotron_nano_v2", "deepseekv32", "minimax_m2"]


@pytest.mark.parametrize("target", [t for t in TARGETS if t.id in CLOCK_FREE], ids=lambda t: t.id)
def test_oracle_equals_transformers(target):
    source = target.template()
    for conv in CONVERSATIONS:
        if not target.supports(conv):
            continue
        messages = target.template_messages(conv.messages)
        for add_generation_prompt in (False, True):
            ours = render_template(source, messages, tools=conv.tools, add_generation_prompt=add_generation_prompt, **target.template_options)
            rendered, _ = render_jinja_template(
                conversations=[messages], tools=conv.tools, chat_template=source, add_generation_prompt=add_generation_prompt,
                bos_token="", eos_token="", **target.template_options,
            )  # fmt: skip
            assert ours == rendered[0]
