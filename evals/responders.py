"""What the eval runner asks for answers: a conversation in, ``n`` sampled replies out.

- :class:`SamplingClientResponder`: any Tinker sampling client (the local backend's base model or a
  checkpoint, the hosted service), through a renderer; a reply is *finished* when the renderer
  parses it cleanly (it ended with the end-of-turn token, not at ``max_tokens``).
- :class:`OpenAIResponder`: any OpenAI-compatible chat-completions endpoint through the ``openai``
  client (``cookbook serve``, vLLM, a hosted API); a reply is finished when ``finish_reason`` is
  ``stop``.

Both are asynchronous, so the runner keeps many requests in flight and the backend batches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cookbook.completers import MessageCompleter
from cookbook.primitives import SamplingClient
from renderers import Message, Renderer, to_openai_messages


@dataclass(frozen=True)
class Reply:
    text: str
    finished: bool  # False: cut off at max_tokens (or malformed); graded as wrong
    completion_tokens: int
    prompt_tokens: int


class Responder(Protocol):
    async def respond(self, messages: Sequence[Message], *, n: int, max_tokens: int, temperature: float,
                      seed: int | None = None) -> list[Reply]: ...


class SamplingClientResponder:
    """Replies sampled from a Tinker sampling client through a :class:`cookbook.completers.MessageCompleter`.

    With ``context_length`` (the model's), ``max_tokens`` is lowered to what fits after the prompt,
    and a prompt that leaves no room gets empty, unfinished replies instead of an error.
    """

    def __init__(self, sampling_client: SamplingClient, renderer: Renderer, *, context_length: int | None = None):
        self.sampling_client, self.renderer, self.context_length = sampling_client, renderer, context_length

    async def respond(self, messages: Sequence[Message], *, n: int, max_tokens: int, temperature: float,
                      seed: int | None = None) -> list[Reply]:
        completer = MessageCompleter(self.sampling_client, self.renderer, max_tokens=max_tokens,
                                     temperature=temperature, context_length=self.context_length)
        return [Reply(c.text, c.parsed, len(c.tokens.tokens), c.prompt_tokens)
                for c in await completer.complete_async(messages, n, seed=seed)]


class OpenAIResponder:
    """Replies from an OpenAI-compatible ``/v1/chat/completions`` endpoint (``openai.AsyncOpenAI``)."""

    def __init__(self, client: Any, model: str) -> None:
        self.client, self.model = client, model

    @classmethod
    def connect(cls, base_url: str | None, model: str, api_key: str | None = None, *, timeout_s: float = 600.0,
                max_retries: int = 2) -> OpenAIResponder:
        """A responder for ``model`` at ``base_url`` (None: OpenAI's; ``api_key`` None: ``$OPENAI_API_KEY``,
        else a placeholder, which servers without keys accept)."""
        import os

        import openai

        key = api_key or os.environ.get("OPENAI_API_KEY") or "none"
        return cls(openai.AsyncOpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=max_retries),
                   model)

    async def respond(self, messages: Sequence[Message], *, n: int, max_tokens: int, temperature: float,
                      seed: int | None = None) -> list[Reply]:
        extra = {"seed": seed} if seed is not None else {}
        response = await self.client.chat.completions.create(
            model=self.model, messages=to_openai_messages(list(messages)), n=n, max_tokens=max_tokens,
            temperature=temperature, **extra)
        usage = response.usage
        completion = usage.completion_tokens if usage else 0
        prompt = usage.prompt_tokens if usage else 0
        choices = sorted(response.choices, key=lambda c: c.index)
        per_choice = completion // max(len(choices), 1)  # usage counts all choices together
        return [Reply(c.message.content or "", c.finish_reason in ("stop", "tool_calls"), per_choice, prompt)
                for c in choices]
