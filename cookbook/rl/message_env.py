"""Environments written in chat messages, run as token environments through a renderer.

An env author implements :class:`MessageEnv`: the opening conversation, and a reply to each
assistant message (reward, done, and the messages that follow it: a user's feedback, a tool's
result). :class:`RenderedEnv` turns it into an :class:`cookbook.rl.types.Env`:

- the first prompt is the rendered conversation with the generation prompt;
- the sampled tokens are parsed by the renderer (a malformed or truncated reply gets
  ``parse_ok = False``; the env decides what that is worth);
- the next prompt is the previous prompt, the sampled tokens *as sampled*, and the rendering of
  the new messages: sampled text is never re-tokenised, so every turn's prompt extends the last
  and a multi-turn episode trains as one sequence.

:func:`play` runs message envs to the end with a :class:`cookbook.completers.MessageCompleter`
(greedy evaluation of a policy, outside training).

May import ``cookbook.rl.types``, ``cookbook.completers``, ``renderers`` and ``tinker``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from tinker import types

from cookbook.completers import MessageCompleter
from cookbook.rl.types import Env, Observation, StepResult
from renderers import Message, Renderer, ToolSpec


@dataclass
class MessageStepResult:
    reward: float
    done: bool
    new_messages: list[Message] = field(default_factory=list)  # what follows the assistant's message
    metrics: dict[str, float] = field(default_factory=dict)
    log: str = ""


class MessageEnv(ABC):
    """One episode in chat messages."""

    tools: Sequence[ToolSpec] | None = None  # tools the model may call (declared in the prompt)

    @abstractmethod
    def initial_messages(self) -> list[Message]: ...

    @abstractmethod
    def step(self, message: Message, parse_ok: bool) -> MessageStepResult:
        """React to the assistant's message (``parse_ok``: it ended properly and parsed)."""


class RenderedEnv(Env):
    """A :class:`MessageEnv` as a token-level env, through ``renderer``."""

    def __init__(self, env: MessageEnv, renderer: Renderer) -> None:
        self.env, self.renderer = env, renderer
        self.messages: list[Message] = []
        self.prompt: list[int] = []

    def initial_observation(self) -> Observation:
        self.messages = list(self.env.initial_messages())
        self.prompt = self.renderer.build_generation_prompt(self.messages, tools=self.env.tools).to_ints()
        return self._observation()

    def step(self, action: list[int]) -> StepResult:
        message, ok = self.renderer.parse_response(action)
        result = self.env.step(message, ok)
        if result.done:
            return StepResult(result.reward, True, None, result.metrics, result.log)
        if not ok:
            raise ValueError("a MessageEnv must end the episode on a reply that did not parse (done=True)")
        self.prompt = self.prompt + list(action) + self._continuation(message, result.new_messages)
        self.messages += [message, *result.new_messages]
        return StepResult(result.reward, False, self._observation(), result.metrics, result.log)

    def _continuation(self, message: Message, new_messages: list[Message]) -> list[int]:
        """Tokens after the sampled end-of-turn token: the rest of the rendered assistant turn (e.g. a
        newline), the new messages and the next generation prompt."""
        before = self.messages + [message]
        done = self.renderer.build_supervised_example(before, tools=self.env.tools)[0].to_ints()
        full = self.renderer.build_generation_prompt(before + new_messages, tools=self.env.tools).to_ints()
        end_of_turn = set(self.renderer.get_stop_sequences())
        last_end = max((i for i, t in enumerate(done) if t in end_of_turn), default=None)
        if last_end is None or full[: len(done)] != done:
            raise ValueError(f"renderer {self.renderer.name!r} does not render this conversation as a prefix of "
                             "its continuation; the episode cannot be trained as one sequence")
        return done[last_end + 1:] + full[len(done):]

    def _observation(self) -> Observation:
        return Observation(types.ModelInput.from_ints(self.prompt), self.renderer.get_stop_sequences())


def play(envs: Sequence[MessageEnv], completer: MessageCompleter, max_turns: int = 16) -> list[MessageStepResult]:
    """Every env's episode to its end (or ``max_turns``), all in step (one batch of requests per
    turn); each episode's last result."""
    conversations = [env.initial_messages() for env in envs]
    results: list[MessageStepResult | None] = [None] * len(envs)
    for _ in range(max_turns):
        live = [i for i, r in enumerate(results) if r is None or not r.done]
        if not live:
            break
        for i, reply in zip(live, completer.complete_many([conversations[i] for i in live])):
            result = results[i] = envs[i].step(reply.message, reply.parsed)
            conversations[i] = conversations[i] + [reply.message, *result.new_messages]
    return [r for r in results if r is not None]
