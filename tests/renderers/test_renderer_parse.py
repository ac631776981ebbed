"""Acceptance 4: parse_response(render(message)) gives the message back (content, thinking, tool
calls) for every assistant message of the suite; truncated or malformed output gives ok=False and
never raises."""

from __future__ import annotations

import random

import pytest
from renderer_corpus import CONVERSATIONS
from renderer_targets import TARGETS, Target, canonical, expected_parse, round_trips
from tokenizer_builders import family_tokenizer

import renderers
from renderers import TrainOnWhat

CASES = [(t, c) for t in TARGETS for c in CONVERSATIONS if t.supports(c) and any(m["role"] == "assistant" for m in c.messages)]
IDS = [f"{t.id}-{c.name}" for t, c in CASES]


def turn_tokens(renderer, messages, i, tools):
    """The tokens a model generates for messages[i]: its weighted tokens as the last message (GLM,
    whose turns end with the next role token, ends it with `<|user|>`)."""
    model_input, weights = renderer.build_supervised_example(messages[: i + 1], TrainOnWhat.LAST_ASSISTANT_MESSAGE, tools=tools)
    tokens = [t for t, w in zip(model_input.to_ints(), weights) if w]
    if renderer.name.startswith("glm45"):
        tokens.append(renderer.tokenizer.convert_tokens_to_ids("<|user|>"))
    return tokens


@pytest.mark.parametrize(("target", "conv"), CASES, ids=IDS)
def test_parse_round_trips_and_truncation_is_detected(target: Target, conv):
    renderer = target.make_renderer()
    for i, message in enumerate(conv.messages):
        if message["role"] != "assistant":
            continue
        tokens = turn_tokens(renderer, conv.messages, i, conv.tools)
        parsed, ok = renderer.parse_response(tokens)
        assert ok, renderer.decode(tokens)
        assert parsed["role"] == "assistant"
        assert canonical(parsed) == expected_parse(target, conv.messages, i)
        # The parsed message renders to the same turn again (ids are the parsed ones).
        again = turn_tokens(renderer, conv.messages[:i] + [parsed], i, conv.tools)
        assert again == tokens or not round_trips(target, conv.messages, i)
        # Truncated turns are not ok.
        for cut in {len(tokens) - 1, len(tokens) // 2, 0}:
            parsed, ok = renderer.parse_response(tokens[:cut])
            if renderer.name == "role_colon" and renderer.decode(tokens[:cut]).endswith("\n\n"):
                continue  # documented: in role_colon a turn ending in a blank line reads as complete
            assert not ok
            assert parsed["role"] == "assistant"


def _target(renderer_name: str) -> Target:
    return next(t for t in TARGETS if t.renderer == renderer_name)


MALFORMED = {
    "qwen3": [
        "<think>\nnever closed<|im_end|>",
        "<tool_call>\n{not json}\n</tool_call><|im_end|>",
        '<tool_call>\n{"name": "f", "arguments": {"a": }\n</tool_call><|im_end|>',
        '<tool_call>\n{"name": "f", "arguments": {}}<|im_end|>',
        '<tool_call>\n{"arguments": {}}\n</tool_call><|im_end|>',
        'text\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call> trailing text<|im_end|>',
    ],
    "tiny": ["<think>\nnever closed<|im_end|>", "<tool_call>\n[1, 2]\n</tool_call><|im_end|>"],
    "llama3": ['{"name": "f", "parameters": {"a": }<|eot_id|>', '{"name": 3, "parameters": {}}<|eot_id|>'],
    "deepseekv3": [
        "x<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{bad}<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>",
        "x<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜end▁of▁sentence｜>",
        "x<｜tool▁calls▁begin｜>garbage<｜tool▁calls▁end｜><｜end▁of▁sentence｜>",
        "stray<｜tool▁sep｜><｜end▁of▁sentence｜>",
    ],
    "kimi_k2": [
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{x<|tool_call_end|><|tool_calls_section_end|><|im_end|>",
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|><|im_end|>",
        "<|tool_calls_section_begin|>junk<|tool_calls_section_end|><|im_end|>",
    ],
    "glm45": [
        "\n<think>never closed<|user|>",
        "\n<think></think>\n<tool_call>f\n<arg_key>a</arg_key>\n<|user|>",
        "\n<think></think>\n<tool_call>f\n</tool_call> trailing<|observation|>",
    ],
    "mistral_small": ["[TOOL_CALLS] [{not json}]</s>", '[TOOL_CALLS] [{"arguments": {}}]</s>', 'text[TOOL_CALLS] [{"name": "f", "arguments": {}}]</s>'],
    "nemotron_nano_v2": ["<TOOLCALL>[{oops]</TOOLCALL>\n<SPECIAL_12>", "<TOOLCALL>[]\n<SPECIAL_12>", "<think>never closed\n<SPECIAL_12>"],
    "deepseekv32": [
        "</think>\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"a\" string=\"false\">{bad</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls><｜end▁of▁sentence｜>",
        "</think>\n\n<｜DSML｜function_calls>\njunk<｜end▁of▁sentence｜>",
    ],
    "minimax_m2": ["<think>\nnever closed[e~[", "\n<minimax:tool_call>\n<invoke name=\"f\">\njunk</invoke>\n</minimax:tool_call>[e~["],
    "gpt_oss_medium_reasoning": [
        "<|channel|>analysis<|message|>thinking<|start|>assistant<|channel|>final<|message|>x<|return|>",
        "<|channel|>final<|message|>x<|call|>",
        " to=functions.f<|channel|>commentary json<|message|>{oops<|call|>",
        "<|channel|>analysis<|message|>a<|end|><|start|>user<|message|>x<|return|>",
        "no header at all<|return|>",
    ],
}


@pytest.mark.parametrize(("name", "text"), [(n, t) for n, ts in MALFORMED.items() for t in ts])
def test_malformed_turns_are_not_ok(name: str, text: str):
    renderer = _target(name).make_renderer()
    tokens = renderer.tokenizer.encode(text, add_special_tokens=False)
    parsed, ok = renderer.parse_response(tokens)
    assert not ok
    assert parsed["role"] == "assistant"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.id)
def test_parse_never_raises_on_random_tokens(target: Target):
    renderer = target.make_renderer()
    tokenizer = family_tokenizer(target.tokenizer)
    special_ids = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.get_added_vocab()]
    stops = [s for s in renderer.get_stop_sequences() if isinstance(s, int)]
    rng = random.Random(0)
    pool = special_ids + [ord(c) for c in 'ab {}":,\n'] + list(range(256))
    for _ in range(300):
        tokens = [rng.choice(pool) for _ in range(rng.randint(0, 40))]
        if stops and rng.random() < 0.5:
            tokens.append(rng.choice(stops))
        message, ok = renderer.parse_response(tokens)
        assert message["role"] == "assistant" and isinstance(ok, bool)


def test_generated_style_outputs_parse():
    """Outputs as models write them, beyond what the templates render."""
    qwen = _target("qwen3").make_renderer()
    text = '<think>\nLet me call.\n</think>\n\n<tool_call>\n{"name":"get_weather","arguments":{"city":"Oslo"}}\n</tool_call><|im_end|>'
    message, ok = qwen.parse_response(qwen.tokenizer.encode(text, add_special_tokens=False))
    assert ok and message["thinking"] == "Let me call." and message["content"] == ""
    assert message["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}

    gpt = _target("gpt_oss_medium_reasoning").make_renderer()
    text = "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Oslo\"}<|call|>"
    message, ok = gpt.parse_response(gpt.tokenizer.encode(text, add_special_tokens=False))
    assert ok and message["thinking"] == "Need weather."
    assert message["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}

    role_colon = renderers.get_renderer("role_colon", family_tokenizer("llama3_base"))
    tokens = role_colon.tokenizer.encode(" Paris.\n\nUser: and", add_special_tokens=False)
    assert role_colon.parse_response(tokens) == ({"role": "assistant", "content": "Paris."}, True)
    tokens = role_colon.tokenizer.encode(" Paris.<|end_of_text|>", add_special_tokens=False)
    assert role_colon.parse_response(tokens) == ({"role": "assistant", "content": "Paris."}, True)
