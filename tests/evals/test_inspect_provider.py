"""The Inspect provider's conversions, on a fake sampling client: tools declared to the renderer, a
sampled tool call back as an Inspect tool call, tool results and system messages forwarded, stop
reasons and usage."""

from __future__ import annotations

import asyncio

import pytest
from fakes import FakeSampler

from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer

pytest.importorskip("inspect_ai")


def sampled_tokens(renderer, message) -> list[int]:
    """The tokens a model samples for ``message`` (up to its end-of-turn token)."""
    conversation = [{"role": "user", "content": "q"}]
    prompt = renderer.build_generation_prompt(conversation).to_ints()
    full = renderer.build_supervised_example([*conversation, message])[0].to_ints()
    stops = set(renderer.get_stop_sequences())
    tail = full[len(prompt):]
    return tail[:next(i for i, t in enumerate(tail) if t in stops) + 1]


def test_tool_calls_round_trip_through_the_provider():
    from inspect_ai.model import (
        ChatMessageAssistant,
        ChatMessageSystem,
        ChatMessageTool,
        ChatMessageUser,
        GenerateConfig,
    )
    from inspect_ai.tool import ToolCall, ToolInfo, ToolParam, ToolParams

    from evals.inspect_model import CookbookModelAPI

    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]}
    prompts = []
    sampler = FakeSampler(lambda prompt: prompts.append(prompt) or sampled_tokens(renderer, call))
    api = CookbookModelAPI("fake", sampling_client=sampler, renderer=renderer)
    tool = ToolInfo(name="add", description="Add two numbers.",
                    parameters=ToolParams(properties={"a": ToolParam(type="integer"), "b": ToolParam(type="integer")},
                                          required=["a", "b"]))
    history = [ChatMessageSystem(content="Be brief."), ChatMessageUser(content="2+3?"),
               ChatMessageAssistant(content="", tool_calls=[ToolCall(id="c0", function="add",
                                                                     arguments={"a": 1, "b": 1})]),
               ChatMessageTool(content="2", tool_call_id="c0", function="add"), ChatMessageUser(content="Now 2+3.")]
    output = asyncio.run(api.generate(history, [tool], "auto", GenerateConfig(max_tokens=64)))
    choice = output.choices[0]
    assert choice.stop_reason == "tool_calls"
    assert [(c.function, c.arguments) for c in choice.message.tool_calls] == [("add", {"a": 2, "b": 3})]
    text = renderer.tokenizer.decode(prompts[0])
    assert "Be brief." in text and '"name": "add"' in text and "Now 2+3." in text  # system, tools, history
    assert output.usage.input_tokens == len(prompts[0]) and output.usage.output_tokens > 0
    assert sampler.params[0].temperature == 0.0 and sampler.params[0].max_tokens == 64  # greedy by default


def test_stop_sequences_and_max_tokens():
    from inspect_ai.model import ChatMessageUser, GenerateConfig

    from evals.inspect_model import CookbookModelAPI

    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    reply = sampled_tokens(renderer, {"role": "assistant", "content": "one. two. three."})
    sampler = FakeSampler(lambda prompt: reply)
    api = CookbookModelAPI("fake", sampling_client=sampler, renderer=renderer, max_tokens=7)
    output = asyncio.run(api.generate([ChatMessageUser(content="count")], [], "none",
                                      GenerateConfig(stop_seqs=[" two"], temperature=0.5, num_choices=2)))
    assert [c.message.text for c in output.choices] == ["one.", "one."]
    params = sampler.params[0]
    assert params.max_tokens == 7 and params.temperature == 0.5 and " two" in params.stop
