"""Acceptance 3: weights are 1 exactly on the trained assistant turns (body and end-of-turn
token) and 0 elsewhere; the generation prompt is a prefix of the training example."""

from __future__ import annotations

import pytest
from renderer_corpus import CONVERSATIONS, a, s, u
from renderer_targets import TARGETS, Target, prefix_holds

from renderers import TrainOnWhat, text_content

CASES = [(t, c) for t in TARGETS for c in CONVERSATIONS if t.supports(c) and any(m["role"] == "assistant" for m in c.messages)]
IDS = [f"{t.id}-{c.name}" for t, c in CASES]


def runs(weights: list[float]) -> list[tuple[int, int]]:
    """Maximal [start, end) ranges of weight 1."""
    out, start = [], None
    for k, w in enumerate(weights + [0.0]):
        assert w in (0.0, 1.0)
        if w and start is None:
            start = k
        elif not w and start is not None:
            out.append((start, k))
            start = None
    return out


def end_of_turn_ids(renderer) -> set[int]:
    if renderer.name == "role_colon":
        return {renderer.tokenizer.convert_tokens_to_ids("Ċ")}  # the "\n" byte
    ids = set(renderer.get_stop_sequences())
    if renderer.name == "gpt_oss":
        ids.add(renderer.tokenizer.convert_tokens_to_ids("<|end|>"))  # assistant turns in history
    return ids


# Documented: GLM writes no end-of-turn token; a turn ends with the next turn's role token, so the
# last turn of a conversation has none.
NO_FINAL_END_TOKEN = {"glm45", "glm45_disable_thinking"}


@pytest.mark.parametrize(("target", "conv"), CASES, ids=IDS)
def test_last_assistant_turn_weights_and_prefix(target: Target, conv):
    renderer = target.make_renderer()
    for i, message in enumerate(conv.messages):
        if message["role"] != "assistant":
            continue
        model_input, weights = renderer.build_supervised_example(conv.messages[: i + 1], TrainOnWhat.LAST_ASSISTANT_MESSAGE, tools=conv.tools)
        tokens = model_input.to_ints()
        [(start, end)] = runs(weights)
        # Only a newline or blank line the template puts after the end-of-turn token follows.
        assert end == len(tokens) or renderer.decode(tokens[end:]) in ("\n", "\n\n")
        if renderer.name not in NO_FINAL_END_TOKEN:
            assert tokens[end - 1] in set(renderer.get_stop_sequences()) | end_of_turn_ids(renderer)
        prompt = renderer.build_generation_prompt(conv.messages[:i], tools=conv.tools).to_ints()
        if prefix_holds(target, conv.messages, i):
            assert tokens[: len(prompt)] == prompt
            assert start == len(prompt)


@pytest.mark.parametrize(("target", "conv"), CASES, ids=IDS)
def test_all_assistant_and_all_messages_weights(target: Target, conv):
    renderer = target.make_renderer()
    msgs = conv.messages
    tokens, last = renderer.build_supervised_example(msgs, TrainOnWhat.LAST_ASSISTANT_MESSAGE, tools=conv.tools)
    _, every = renderer.build_supervised_example(msgs, TrainOnWhat.ALL_ASSISTANT_MESSAGES, tools=conv.tools)
    _, everything = renderer.build_supervised_example(msgs, TrainOnWhat.ALL_MESSAGES, tools=conv.tools)
    tokens = tokens.to_ints()
    assert all(x <= y <= z for x, y, z in zip(last, every, everything))
    assistant_runs = runs(every)
    assert len(assistant_runs) == sum(m["role"] == "assistant" for m in msgs)
    eot = end_of_turn_ids(renderer)
    if renderer.name in NO_FINAL_END_TOKEN:  # turns followed by a user or tool turn end with its role token
        followed = [end for _, end in assistant_runs if end < len(tokens) and renderer.decode(tokens[end - 1 : end]) in ("<|user|>", "<|observation|>")]
        assert len(followed) >= sum(1 for k, m in enumerate(msgs[:-1]) if m["role"] == "assistant" and msgs[k + 1]["role"] in ("user", "tool"))
    else:
        assert all(tokens[end - 1] in eot for _, end in assistant_runs)
    # Per-message flags select the same tokens as the mode they imitate.
    flagged = [{**m, "trainable": m["role"] == "assistant"} for m in msgs]
    _, custom = renderer.build_supervised_example(flagged, TrainOnWhat.CUSTOMIZED, tools=conv.tools)
    assert custom == every
    # Every user message's text is trained under ALL_MESSAGES.
    trained_text = "".join(renderer.decode(tokens[s:e]) for s, e in runs(everything))
    for m in msgs:
        if m["role"] == "user":
            assert text_content(m).strip() in trained_text


# Exact weighted text for one small conversation, per family.
WEIGHTED_TEXT = {
    "role_colon": " Hi there!\n\n",
    "tiny": "Hi there!<|im_end|>",
    "qwen3": "<think>\n\n</think>\n\nHi there!<|im_end|>",
    "qwen3_disable_thinking": "Hi there!<|im_end|>",
    "qwen3_instruct": "Hi there!<|im_end|>",
    "llama3": "Hi there!<|eot_id|>",
    "deepseekv3": "Hi there!<｜end▁of▁sentence｜>",
    "deepseekv3_thinking": "</think>Hi there!<｜end▁of▁sentence｜>",
    "kimi_k2": "Hi there!<|im_end|>",
    "gpt_oss_medium_reasoning": "<|channel|>final<|message|>Hi there!<|return|>",
    "glm45": "\n<think></think>\nHi there!",
    "glm45_disable_thinking": "\nHi there!",
    "gemma3": "Hi there!<end_of_turn>",
    "mistral_small": "Hi there!</s>",
    "nemotron_nano_v2": "Hi there!\n<SPECIAL_12>",
    "deepseekv32": "</think>Hi there!<｜end▁of▁sentence｜>",
    "deepseekv32_disable_thinking": "Hi there!<｜end▁of▁sentence｜>",
    "minimax_m2": "Hi there![e~[",
}


@pytest.mark.parametrize("target", [t for t in TARGETS if t.renderer in WEIGHTED_TEXT], ids=lambda t: t.id)
def test_weighted_text_is_exactly_the_answer_and_end_of_turn(target: Target):
    renderer = target.make_renderer()
    model_input, weights = renderer.build_supervised_example([s("Be nice."), u("Hello"), a("Hi there!")])
    tokens = model_input.to_ints()
    assert renderer.decode([t for t, w in zip(tokens, weights) if w]) == WEIGHTED_TEXT[target.renderer]


@pytest.mark.parametrize("target", [t for t in TARGETS if t.renderer in ("qwen3", "tiny", "llama3", "kimi_k2")], ids=lambda t: t.id)
def test_customized_flags_can_train_a_user_turn(target: Target):
    renderer = target.make_renderer()
    msgs = [u("Question?"), a("Answer."), {**u("Follow-up?"), "trainable": True}, a("Second answer.")]
    model_input, weights = renderer.build_supervised_example(msgs, "customized")
    tokens = model_input.to_ints()
    [(start, end)] = runs(weights)
    text = renderer.decode(tokens[start:end])
    assert text.startswith("Follow-up?") and "Second answer" not in text and "Answer." not in text


def test_last_assistant_message_needs_an_assistant_message():
    target = next(t for t in TARGETS if t.id == "qwen3")
    with pytest.raises(ValueError):
        target.make_renderer().build_supervised_example([u("hi")])
