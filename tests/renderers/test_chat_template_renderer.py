"""The chat-template renderer (issue 23, acceptance 1 and 2): for every template of the shared
folders and every vendored family template, over the conversation suite, its token ids equal
`tokenizer.apply_chat_template(..., tokenize=True)` (transformers itself is the oracle), its weights
cover exactly the assistant turns, and where a family renderer states the format, both renderers
give the same tokens, weights and parsed messages."""

from __future__ import annotations

import copy
import random

import pytest
from chat_template_cases import CASES, FAMILY_TARGETS, TemplateCase, assistant_bodies
from renderer_corpus import CONVERSATIONS, WEATHER, WEATHER_CALL, a, s, u
from renderer_targets import Target, canonical
from template_oracle import PINNED_NOW, load_template, load_vendored_template
from tokenizer_builders import byte_level_tokenizer, family_tokenizer, qwen3_hf_tokenizer

import renderers
from renderers import ChatTemplateError, ChatTemplateRenderer, NoChatTemplateError, TrainOnWhat, get_renderer

LAST, ALL = TrainOnWhat.LAST_ASSISTANT_MESSAGE, TrainOnWhat.ALL_ASSISTANT_MESSAGES


def runs(weights: list[float]) -> list[tuple[int, int]]:
    out, start = [], None
    for k, w in enumerate([*weights, 0.0]):
        if w and start is None:
            start = k
        elif not w and start is not None:
            out.append((start, k))
            start = None
    return out


def has_assistant(conv) -> bool:
    return any(m["role"] == "assistant" for m in conv.messages)


def reference_ids(renderer: ChatTemplateRenderer, case_options: dict, conv, add_generation_prompt: bool) -> list[int]:
    return renderer.tokenizer.apply_chat_template(
        renderer.template_messages(conv.messages), tools=conv.tools, add_generation_prompt=add_generation_prompt,
        tokenize=True, return_dict=False, **case_options,
    )  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_token_ids_equal_apply_chat_template(case: TemplateCase):
    renderer = case.renderer()
    rendered = 0
    for conv in CONVERSATIONS:
        try:
            expected = reference_ids(renderer, case.options, conv, False)
        except Exception:  # the template rejects the conversation: so must the renderer
            with pytest.raises(ChatTemplateError):
                renderer.build_supervised_example(conv.messages, TrainOnWhat.CUSTOMIZED, tools=conv.tools)
            continue
        rendered += 1
        model_input, weights = renderer.build_supervised_example(conv.messages, TrainOnWhat.CUSTOMIZED, tools=conv.tools)
        assert model_input.to_ints() == expected, conv.name
        assert len(weights) == len(expected)
        # The generation prompt is the template's add_generation_prompt text (or, for templates whose
        # user turns already end with the assistant header, the rendering without it).
        prompt_ids = reference_ids(renderer, case.options, conv, renderer.facts.uses_generation_prompt)
        if conv.tools and renderer.facts.tool_format in (None, "unknown"):
            with pytest.raises(ChatTemplateError, match="tool-call format"):
                renderer.build_generation_prompt(conv.messages, tools=conv.tools)
        else:
            assert renderer.build_generation_prompt(conv.messages, tools=conv.tools).to_ints() == prompt_ids, conv.name
    assert rendered >= 18  # every template renders a good part of the suite (strict ones reject tools, ...)


@pytest.mark.parametrize("case", [c for c in CASES if c.body], ids=lambda c: c.id)
def test_weights_cover_exactly_the_assistant_turns(case: TemplateCase):
    """Formats with no family renderer: each trained turn's text is stated in chat_template_cases."""
    renderer = case.renderer()
    checked = 0
    for conv in CONVERSATIONS:
        if not has_assistant(conv) or conv.tools or conv.has_tool_use:
            continue
        for mode in (LAST, ALL):
            try:
                model_input, weights = renderer.build_supervised_example(conv.messages, mode)
            except ChatTemplateError:
                break  # the template rejects it (checked above)
            tokens = model_input.to_ints()
            assistants = [i for i, m in enumerate(conv.messages) if m["role"] == "assistant"]
            trained = assistants[-1:] if mode is LAST else assistants
            # Community templates indent and add blank lines around turns; whitespace runs are
            # compared as one space (the spans' ends are still checked to the character by the
            # family comparisons below).
            texts = [" ".join(renderer.decode(tokens[a_:b_]).split()) for a_, b_ in runs(weights)]
            expected = [" ".join(b.split()) for b in assistant_bodies(case, conv.messages, trained)]
            assert texts == [b for b in expected if b], (conv.name, mode)  # an empty answer trains nothing
            checked += 1
    assert checked >= 10


def _chat_template_twin(target: Target) -> ChatTemplateRenderer:
    tokenizer = copy.copy(family_tokenizer(target.tokenizer))
    tokenizer.chat_template = target.template()
    return ChatTemplateRenderer(tokenizer, now=PINNED_NOW, **target.template_options)


@pytest.mark.parametrize("target", FAMILY_TARGETS, ids=lambda t: t.id)
def test_same_tokens_weights_and_parse_as_the_family_renderer(target: Target):
    """Acceptance 2: on every conversation the family renders exactly as its template (same ids),
    both renderers give the same weights (last and all assistant turns) and parse each turn the same."""
    family, twin = target.make_renderer(), _chat_template_twin(target)
    compared = 0
    for conv in CONVERSATIONS:
        if not target.supports(conv) or not has_assistant(conv):
            continue
        family_input, family_weights = family.build_supervised_example(conv.messages, ALL, tools=conv.tools)
        twin_input, twin_weights = twin.build_supervised_example(conv.messages, ALL, tools=conv.tools)
        if family_input.to_ints() != twin_input.to_ints():
            continue  # a documented difference of the family from its template
        compared += 1
        assert twin_weights == family_weights, conv.name
        for i, message in enumerate(conv.messages):
            if message["role"] != "assistant":
                continue
            f_input, f_weights = family.build_supervised_example(conv.messages[: i + 1], LAST, tools=conv.tools)
            t_input, t_weights = twin.build_supervised_example(conv.messages[: i + 1], LAST, tools=conv.tools)
            if f_input.to_ints() != t_input.to_ints():
                continue
            assert t_weights == f_weights, (conv.name, i)
            if target.renderer.startswith("gpt_oss"):
                continue  # harmony tool calls are parsed by the family only (documented)
            turn = [t for t, w in zip(t_input.to_ints(), t_weights) if w]
            if target.renderer.startswith("glm45"):
                turn.append(twin.tokenizer.convert_tokens_to_ids("<|user|>"))  # GLM turns end with the next role token
            parsed, ok = twin.parse_response(turn)
            family_parsed, family_ok = family.parse_response(turn)
            assert ok and family_ok, (conv.name, i, twin.decode(turn))
            assert canonical(parsed) == canonical(family_parsed), (conv.name, i)
    assert compared >= 10, compared


def test_real_qwen_vocabulary_token_ids_and_weights():
    """With the real Qwen vocabulary (BPE merges across turn boundaries), ids equal transformers'
    and the weights equal the qwen3 family's, merged tokens included."""
    tokenizer = copy.copy(qwen3_hf_tokenizer())
    tokenizer.chat_template = load_template("Qwen-Qwen3-0.6B.jinja")
    twin = ChatTemplateRenderer(tokenizer)
    family = get_renderer("qwen3", qwen3_hf_tokenizer())
    extra = [[u("Hi"), a("\n\nHello")], [u("x\n"), a("\n\n\ny"), u("\n\nz"), a(" \n w ")]]
    for messages in [c.messages for c in CONVERSATIONS if has_assistant(c)] + extra:
        tools = next((c.tools for c in CONVERSATIONS if c.messages is messages), None)
        model_input, weights = twin.build_supervised_example(messages, ALL, tools=tools)
        reference = tokenizer.apply_chat_template(twin.template_messages(messages), tools=tools, tokenize=True, return_dict=False)
        assert model_input.to_ints() == reference
        family_input, family_weights = family.build_supervised_example(messages, ALL, tools=tools)
        assert model_input.to_ints() == family_input.to_ints()
        assert weights == family_weights


# -- selection ---------------------------------------------------------------------------------


def test_auto_picks_the_family_for_known_models_and_the_template_otherwise():
    tokenizer = copy.copy(family_tokenizer("qwen3"))
    tokenizer.chat_template = load_vendored_template("zai-org-GLM-4.6.jinja")  # any template (always present)
    assert get_renderer("auto", tokenizer, model_name="Qwen/Qwen3-8B").name == "qwen3"
    assert get_renderer("auto", tokenizer, model_name="someone/qwen3-finetune").name == "chat_template"
    assert get_renderer("auto", tokenizer).name == "chat_template"  # name_or_path is empty here
    assert renderers.auto_renderer_name("zai-org/glm-4.6", tokenizer) == "glm45"


def test_a_model_with_no_template_stops_with_one_line():
    with pytest.raises(NoChatTemplateError) as error:
        get_renderer("auto", family_tokenizer("qwen3"), model_name="someone/base-model")
    message = str(error.value)
    assert "\n" not in message and "someone/base-model" in message and "no chat template" in message
    assert isinstance(error.value, ValueError)


# -- what the chat-template renderer cannot do ---------------------------------------------------


@pytest.fixture(scope="module")
def gemma() -> ChatTemplateRenderer:
    return next(c for c in CASES if c.id == "gemma-3").renderer()


def test_all_messages_and_flagged_user_messages_are_refused(gemma):
    messages = [s("sys"), u("q"), a("r")]
    with pytest.raises(ChatTemplateError, match="assistant turns only"):
        gemma.build_supervised_example(messages, TrainOnWhat.ALL_MESSAGES)
    with pytest.raises(ChatTemplateError, match="message 1 \\(user\\)"):
        gemma.build_supervised_example([s("sys"), {**u("q"), "trainable": True}, a("r")], TrainOnWhat.CUSTOMIZED)
    flagged = [s("sys"), u("q"), {**a("r"), "trainable": True}]
    assert gemma.build_supervised_example(flagged, TrainOnWhat.CUSTOMIZED) == gemma.build_supervised_example(flagged, LAST)


def test_unknown_tool_call_format_refuses_tool_sampling_but_renders_training_data():
    template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "{% for c in m.tool_calls or [] %}CALL {{ c.function.name }}({{ c.function.arguments | tojson }}){% endfor %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    renderer = ChatTemplateRenderer(family_tokenizer("chatml"), template=template)
    assert renderer.facts.tool_format == "unknown"
    with pytest.raises(ChatTemplateError, match="tool-call format"):
        renderer.build_generation_prompt([u("Weather?")], tools=[WEATHER])
    model_input, weights = renderer.build_supervised_example([u("Weather?"), a("", calls=[WEATHER_CALL])])
    trained = renderer.decode([t for t, w in zip(model_input.to_ints(), weights) if w])
    assert trained == 'CALL get_weather({"city": "Lyon"})<|im_end|>'


def test_template_errors_are_one_line_value_errors():
    renderer = next(c for c in CASES if c.id == "gemma-3").renderer()
    with pytest.raises(ChatTemplateError, match="Conversation roles must alternate"):
        renderer.build_supervised_example([u("a"), u("b"), a("c")])
    with pytest.raises(ChatTemplateError, match="cannot use this chat template"):
        ChatTemplateRenderer(family_tokenizer("chatml"), template="{{ raise_exception('no') }}")
    with pytest.raises(NoChatTemplateError):
        ChatTemplateRenderer(byte_level_tokenizer(["<|im_end|>"]))


def test_probed_facts_of_a_few_templates():
    facts = {c.id: c.renderer().facts for c in CASES if c.id in ("qwen3", "glm-4.6", "deepseek-v3.2", "gpt-oss", "falcon-instruct")}
    assert (facts["qwen3"].end_of_turn, facts["qwen3"].think_close, facts["qwen3"].tool_format) == ("<|im_end|>", "</think>", "qwen")
    assert facts["glm-4.6"].end_of_turn == "" and facts["glm-4.6"].next_turn == ("<|user|>", "<|observation|>")
    assert facts["glm-4.6"].tool_format == "glm"
    assert not facts["deepseek-v3.2"].uses_generation_prompt and facts["deepseek-v3.2"].tool_format == "deepseek_dsml"
    assert facts["gpt-oss"].tool_call_end == "<|call|>" and facts["gpt-oss"].history_end == "<|end|>"
    assert len(facts["falcon-instruct"].next_turn) == 1 and facts["falcon-instruct"].next_turn[0].endswith("\n\nUser:")


@pytest.mark.parametrize("case", [c for c in CASES if c.id in ("qwen3", "glm-4.6", "deepseek-v3.2", "minimax-m2", "falcon-instruct")],
                         ids=lambda c: c.id)
def test_parse_never_raises_on_random_tokens(case: TemplateCase):
    renderer = case.renderer()
    tokenizer = renderer.tokenizer
    special_ids = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.get_added_vocab()]
    rng = random.Random(0)
    for _ in range(200):
        tokens = [rng.choice(special_ids + list(range(256))) for _ in range(rng.randint(0, 40))]
        message, ok = renderer.parse_response(tokens)
        assert message["role"] == "assistant" and isinstance(ok, bool)
