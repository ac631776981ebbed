"""Acceptance 1: every renderer's output equals its official template's rendering, byte for byte
(decoded text, and token ids equal to tokenizing the template's text), for every conversation of
the suite, with the generation prompt on and off. Documented differences are part of `expected`."""

from __future__ import annotations

import pytest
from renderer_corpus import CONVERSATIONS
from renderer_targets import TARGETS, TINY_TEMPLATE, Target

import renderers
from renderers.tiny import CHAT_TEMPLATE as TINY_CHAT_TEMPLATE

CASES = [(target, conv) for target in TARGETS for conv in CONVERSATIONS if target.supports(conv)]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.id)
def test_each_family_has_at_least_20_conversations(target: Target):
    supported = [c for c in CONVERSATIONS if target.supports(c)]
    assert len(supported) >= 20


@pytest.mark.parametrize(("target", "conv"), CASES, ids=[f"{t.id}-{c.name}" for t, c in CASES])
def test_renderer_matches_template(target: Target, conv):
    renderer = target.make_renderer()
    for add_generation_prompt in (False, True):
        expected = target.expected(conv.messages, conv.tools, add_generation_prompt)
        if add_generation_prompt:
            tokens = renderer.build_generation_prompt(conv.messages, tools=conv.tools).to_ints()
        else:
            model_input, weights = renderer.build_supervised_example(conv.messages, renderers.TrainOnWhat.ALL_MESSAGES, tools=conv.tools)
            tokens = model_input.to_ints()
            assert len(weights) == len(tokens)
        assert renderer.decode(tokens) == expected, f"add_generation_prompt={add_generation_prompt}"
        assert tokens == renderer.tokenizer.encode(expected, add_special_tokens=False)
        assert renderer.render_text(conv.messages, tools=conv.tools, add_generation_prompt=add_generation_prompt) == expected


def test_tiny_chat_template_is_the_models_template():
    assert TINY_CHAT_TEMPLATE == TINY_TEMPLATE
