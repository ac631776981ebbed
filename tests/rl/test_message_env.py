"""Message-level envs through a renderer: each prompt extends the last with the sampled tokens as sampled."""

from __future__ import annotations

import pytest

from cookbook.rl.message_env import MessageEnv, MessageStepResult, RenderedEnv
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer, text_content


class Echo(MessageEnv):
    """Two user turns; the reward is 1 for replying 'yes' to the second."""

    def __init__(self):
        self.turn = 0

    def initial_messages(self):
        return [{"role": "system", "content": "answer yes"}, {"role": "user", "content": "ready?"}]

    def step(self, message, parse_ok):
        self.turn += 1
        if not parse_ok or self.turn == 2:
            return MessageStepResult(float(parse_ok and text_content(message) == "yes"), True)
        return MessageStepResult(0.0, False, [{"role": "user", "content": "sure?"}], metrics={"turn": 1.0})


@pytest.fixture(scope="module")
def renderer():
    return get_renderer("tiny", get_tokenizer("tiny"))


def test_next_prompt_is_previous_prompt_plus_sampled_tokens_plus_new_messages(renderer):
    env = RenderedEnv(Echo(), renderer)
    first = env.initial_observation()
    assert first.model_input.to_ints() == renderer.build_generation_prompt(Echo().initial_messages()).to_ints()
    assert first.stop == renderer.get_stop_sequences()
    # a sampled reply whose tokens differ from how the renderer would tokenise the same text
    tok = renderer.tokenizer
    action = [tok.convert_tokens_to_ids(c) for c in "no"] + renderer.get_stop_sequences()
    result = env.step(action)
    assert not result.done
    prompt = result.next_observation.model_input.to_ints()
    assert prompt[: first.model_input.length + len(action)] == first.model_input.to_ints() + action
    conversation = Echo().initial_messages() + [{"role": "assistant", "content": "no"},
                                                {"role": "user", "content": "sure?"}]
    assert renderer.decode(prompt) == renderer.render_text(conversation, add_generation_prompt=True)
    final = env.step(renderer.tokenizer.encode("yes") + renderer.get_stop_sequences())
    assert final.done and final.reward == 1.0


def test_a_truncated_reply_ends_the_episode(renderer):
    env = RenderedEnv(Echo(), renderer)
    env.initial_observation()
    result = env.step(renderer.tokenizer.encode("ye"))  # no end-of-turn token: cut off by max_tokens
    assert result.done and result.reward == 0.0
