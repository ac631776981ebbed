"""The registry, the model table, OpenAI conversion, options and error paths."""

from __future__ import annotations

import copy
import datetime

import pytest
from renderer_corpus import CONVERSATIONS, WEATHER, WEATHER_CALL, a, call, s, t, u
from renderer_targets import TARGETS
from tokenizer_builders import byte_level_tokenizer, family_tokenizer

import renderers
from renderers import TrainOnWhat, get_recommended_renderer_name, get_renderer
from renderers.gpt_oss import GptOssRenderer
from renderers.llama3 import Llama3Renderer


def test_every_registered_name_builds_a_renderer():
    tokenizer_for = {
        "role_colon": "tiny", "tiny": "tiny", "qwen3": "qwen3", "qwen3_disable_thinking": "qwen3", "qwen3_instruct": "qwen3",
        "llama3": "llama3", "deepseekv3": "deepseek", "deepseekv3_thinking": "deepseek", "kimi_k2": "kimi",
        "glm45": "glm45", "glm45_disable_thinking": "glm45", "gemma3": "gemma3", "mistral_small": "mistral",
        "nemotron_nano_v2": "nemotron", "deepseekv32": "deepseek_v32", "deepseekv32_disable_thinking": "deepseek_v32",
        "minimax_m2": "minimax",
    }  # fmt: skip
    with_template = copy.copy(family_tokenizer("qwen3"))
    with_template.chat_template = renderers.tiny.CHAT_TEMPLATE
    for name in renderers.renderer_names():
        if name in ("auto", "chat_template"):
            renderer = get_renderer(name, with_template)
        else:
            renderer = get_renderer(name, family_tokenizer("gpt_oss" if name.startswith("gpt_oss") else tokenizer_for[name]))
        assert isinstance(renderer, renderers.Renderer)
        assert renderer.get_stop_sequences()


def test_model_table_names_known_renderers():
    names = set(renderers.renderer_names())
    assert set(renderers.MODEL_RENDERERS.values()) <= names
    assert get_recommended_renderer_name("Qwen/Qwen3-8B") == "qwen3"
    assert get_recommended_renderer_name("Qwen/Qwen3-8B-Base") == "role_colon"
    assert get_recommended_renderer_name("Qwen/Qwen3-30B-A3B-Instruct-2507") == "qwen3_instruct"
    assert get_recommended_renderer_name("meta-llama/Llama-3.1-8B-Instruct") == "llama3"
    assert get_recommended_renderer_name("meta-llama/llama-3.2-1b") == "role_colon"
    assert get_recommended_renderer_name("deepseek-ai/DeepSeek-V3.1") == "deepseekv3"
    assert get_recommended_renderer_name("moonshotai/Kimi-K2-Instruct") == "kimi_k2"
    assert get_recommended_renderer_name("openai/gpt-oss-20b") == "gpt_oss"
    assert get_recommended_renderer_name("tiny") == "tiny"
    assert get_recommended_renderer_name("zai-org/GLM-4.6") == "glm45"
    assert get_recommended_renderer_name("google/gemma-3-4b-it") == "gemma3"
    assert get_recommended_renderer_name("mistralai/Mistral-Small-3.1-24B-Instruct-2503") == "mistral_small"
    assert get_recommended_renderer_name("nvidia/NVIDIA-Nemotron-Nano-9B-v2") == "nemotron_nano_v2"
    assert get_recommended_renderer_name("deepseek-ai/DeepSeek-V3.2") == "deepseekv32"
    assert get_recommended_renderer_name("MiniMaxAI/MiniMax-M2") == "minimax_m2"
    assert get_recommended_renderer_name("someone/unknown-model") == "auto"


def test_unknown_renderer_and_duplicate_registration():
    with pytest.raises(ValueError, match="unknown renderer"):
        get_renderer("nope", family_tokenizer("tiny"))
    with pytest.raises(ValueError, match="already registered"):
        renderers.register_renderer("tiny", lambda tok: None)


def test_register_renderer_adds_a_name(monkeypatch):
    monkeypatch.setattr(renderers.registry, "_RENDERERS", dict(renderers.registry._RENDERERS))
    renderers.register_renderer("test_only_tiny_alias", lambda tokenizer, **kw: get_renderer("tiny", tokenizer, **kw))
    assert get_renderer("test_only_tiny_alias", family_tokenizer("tiny")).name == "tiny"


def test_missing_special_tokens_are_reported():
    with pytest.raises(ValueError, match="<\\|eot_id\\|>"):
        get_renderer("llama3", family_tokenizer("tiny"))


def test_optional_special_tokens_fall_back_to_text():
    """A ChatML tokenizer without <think> still renders Qwen3 text exactly (as plain text)."""
    tokenizer = byte_level_tokenizer(["<|im_start|>", "<|im_end|>"])
    renderer = get_renderer("qwen3", tokenizer)
    messages = [u("Hi"), a("Hello", thinking="greet")]
    model_input, _ = renderer.build_supervised_example(messages)
    assert renderer.decode(model_input.to_ints()) == renderer.render_text(messages)
    assert renderer.decode(model_input.to_ints()).endswith("<think>\ngreet\n</think>\n\nHello<|im_end|>\n")


def test_stop_sequences():
    assert get_renderer("qwen3", family_tokenizer("qwen3")).get_stop_sequences() == [family_tokenizer("qwen3").convert_tokens_to_ids("<|im_end|>")]
    assert get_renderer("role_colon", family_tokenizer("tiny")).get_stop_sequences() == ["\n\nUser:"]
    gpt = family_tokenizer("gpt_oss")
    assert get_renderer("gpt_oss", gpt).get_stop_sequences() == gpt.convert_tokens_to_ids(["<|return|>", "<|call|>"])
    assert get_renderer("tiny", family_tokenizer("tiny")).get_stop_sequences() == [family_tokenizer("tiny").convert_tokens_to_ids("<|im_end|>")]


def test_dates_and_reasoning_effort_options():
    llama = Llama3Renderer(family_tokenizer("llama3"), date=None)
    assert f"Today Date: {datetime.datetime.now().strftime('%d %b %Y')}" in llama.render_text([u("hi")])
    assert "Today Date: 26 Jul 2024" in get_renderer("llama3", family_tokenizer("llama3")).render_text([u("hi")])
    gpt = get_renderer("gpt_oss", family_tokenizer("gpt_oss"))
    assert "Current date: 2025-08-05\n\nReasoning: medium\n\n" in gpt.render_text([u("hi")])
    gpt = get_renderer("gpt_oss", family_tokenizer("gpt_oss"), reasoning_effort="high", date="2030-01-01")
    assert "Current date: 2030-01-01\n\nReasoning: high\n\n" in gpt.render_text([u("hi")])
    with pytest.raises(ValueError):
        GptOssRenderer(family_tokenizer("gpt_oss"), reasoning_effort="extreme")


@pytest.mark.parametrize(
    ("name", "messages", "tools"),
    [
        ("llama3", [u("x"), a("", calls=[WEATHER_CALL, call("get_weather", {"city": "Oslo"}, "c2")])], None),  # template raises too
        ("llama3", [s("sys")], [WEATHER]),  # template raises too: tools but no user message
        ("gpt_oss", [u("x"), a("content", thinking="thinking", calls=[WEATHER_CALL])], None),  # template raises too
        ("gpt_oss", [u("x"), t("result", "c1")], None),  # template raises too: no tool call before
        ("gpt_oss", [u("x"), a("<|channel|>final<|message|>hi")], None),  # template raises too
        ("gpt_oss", [u("x"), a("", calls=[WEATHER_CALL, WEATHER_CALL])], None),  # template keeps only the first
        ("role_colon", [u("x"), a("", calls=[WEATHER_CALL])], None),
        ("role_colon", [u("x")], [WEATHER]),
        ("qwen3", [{"role": "narrator", "content": "x"}], None),
        ("qwen3", [{"role": "user", "content": [{"type": "image", "url": "x"}]}], None),
        ("kimi_k2", [u("x"), a("", calls=[call("f", {}, "c") | {"function": {"name": "f", "arguments": "{bad"}}])], None),
        ("gemma3", [u("x")], [WEATHER]),  # no tool format
        ("gemma3", [u("x"), u("y")], None),  # template raises too: roles must alternate
        ("mistral_small", [u("x"), a("", calls=[call("f", {}, "short")])], None),  # template raises too: id < 9 chars
        ("mistral_small", [u("x"), a("y"), s("z")], None),  # template raises too: system only first
        ("minimax_m2", [u("x"), t("result", "call_0001")], None),  # template raises too: no call before
    ],
)
def test_unsupported_input_raises_value_error(name, messages, tools):
    kind = {"llama3": "llama3", "gpt_oss": "gpt_oss", "role_colon": "tiny", "qwen3": "qwen3", "kimi_k2": "kimi",
            "gemma3": "gemma3", "mistral_small": "mistral", "minimax_m2": "minimax"}[name]
    renderer = get_renderer(name, family_tokenizer(kind))
    with pytest.raises(ValueError):
        renderer.build_generation_prompt(messages, tools=tools)


def test_train_on_what_accepts_strings():
    renderer = get_renderer("tiny", family_tokenizer("tiny"))
    messages = [u("a"), a("b")]
    assert renderer.build_supervised_example(messages, "all_assistant_messages") == renderer.build_supervised_example(
        messages, TrainOnWhat.ALL_ASSISTANT_MESSAGES
    )


def test_tiny_flattens_thinking_and_tool_calls_into_content():
    renderer = get_renderer("tiny", family_tokenizer("tiny"))
    text = renderer.render_text([u("Weather?"), a("Checking.", thinking="Use the tool.", calls=[WEATHER_CALL])])
    assert text == (
        "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<think>\nUse the tool.\n</think>\n\n"
        'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call><|im_end|>\n'
    )


def test_openai_round_trip():
    openai_messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "in Lyon?"}]},
        {"role": "assistant", "content": None, "reasoning_content": "Call the tool.", "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1", "name": "get_weather"},
        {"role": "assistant", "content": "Sunny.", "reasoning": "Done."},
    ]
    messages = renderers.from_openai_messages(openai_messages)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert renderers.text_content(messages[1]) == "Weather in Lyon?"
    assert messages[2]["thinking"] == "Call the tool." and messages[2]["content"] == ""
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == '{"city": "Lyon"}'
    assert messages[4]["thinking"] == "Done."
    back = renderers.to_openai_messages(messages)
    assert back[2]["reasoning_content"] == "Call the tool." and back[2]["tool_calls"] == [WEATHER_CALL]
    assert back[3] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1", "name": "get_weather"}
    assert renderers.from_openai_messages(back) == messages
    # dict arguments are accepted and become JSON text
    dict_args = {"role": "assistant", "content": "", "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}
    assert renderers.from_openai_message(dict_args)["tool_calls"][0]["function"]["arguments"] == '{"a": 1}'
    with pytest.raises(ValueError):
        renderers.from_openai_message({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]})


def test_renderer_is_usable_in_an_rl_loop():
    """Sample-shaped round trip: prompt, then a parsed model turn appended and re-rendered."""
    target = next(t for t in TARGETS if t.id == "qwen3")
    renderer = target.make_renderer()
    conv = next(c for c in CONVERSATIONS if c.name == "tool_call_flow")
    history = conv.messages[:2]
    prompt = renderer.build_generation_prompt(history, tools=conv.tools).to_ints()
    sampled = renderer.tokenizer.encode(
        '<think>\nNeed weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n</tool_call><|im_end|>',
        add_special_tokens=False,
    )
    message, ok = renderer.parse_response(sampled)
    assert ok
    full, weights = renderer.build_supervised_example(history + [message], tools=conv.tools)
    assert full.to_ints()[: len(prompt) + len(sampled)] == prompt + sampled
    assert weights[len(prompt) : len(prompt) + len(sampled)] == [1.0] * len(sampled)


def test_tiny_renderer_matches_the_embedded_models_tokenizer():
    """Cross-check with the embedded model's own tokenizer and chat template, when present."""
    tiny = pytest.importorskip("cookbook.tiny")
    tokenizer = tiny.build_tiny_tokenizer()
    renderer = get_renderer("tiny", tokenizer)
    for conv in CONVERSATIONS:
        if conv.tools or conv.has_tool_use or any(m.get("thinking") for m in conv.messages):
            continue
        messages = [{"role": m["role"], "content": renderers.text_content(m)} for m in conv.messages]
        for add_generation_prompt in (False, True):
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
            assert renderer.render_text(messages, add_generation_prompt=add_generation_prompt) == text
            if add_generation_prompt:
                assert renderer.build_generation_prompt(messages).to_ints() == tokenizer.encode(text, add_special_tokens=False)
