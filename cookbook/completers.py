"""Completers: sampling through any sampling client, at the level of tokens or of chat messages.

- :class:`TokenCompleter`: prompt tokens -> sampled tokens, their logprobs and the stop reason
  (what RL rollouts call).
- :class:`MessageCompleter`: a conversation -> the assistant's next message, through a renderer
  (what evals, a distillation teacher and an OpenAI-compatible server call).

Both take any :class:`cookbook.primitives.SamplingClient` (local or hosted). ``complete_many``
submits every request before waiting for any, so the backend can batch them.

May import ``cookbook.primitives`` and ``renderers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tinker import APIFuture, types

from cookbook.primitives import SamplingClient
from renderers import Message, Renderer, ToolSpec, text_content


@dataclass(frozen=True)
class TokensWithLogprobs:
    """One sampled continuation."""

    tokens: list[int]
    logprobs: list[float] | None  # per sampled token, log_softmax(logits / temperature)
    stop_reason: str  # "stop" (a stop sequence or EOS) or "length" (max_tokens)


@dataclass(frozen=True)
class Completion:
    """The assistant's message parsed from one sampled continuation."""

    message: Message
    parsed: bool  # False when the response was malformed (e.g. cut off before its end-of-turn token)
    tokens: TokensWithLogprobs

    @property
    def text(self) -> str:
        return text_content(self.message)


class TokenCompleter:
    """Samples continuations of token prompts with fixed sampling settings."""

    def __init__(self, sampling_client: SamplingClient, *, max_tokens: int, temperature: float = 1.0,
                 stop: Sequence[str] | Sequence[int] | None = None, top_p: float | None = None,
                 top_k: int | None = None, seed: int | None = None) -> None:
        self.sampling_client = sampling_client
        settings = dict(max_tokens=max_tokens, temperature=temperature, stop=None if stop is None else list(stop),
                        top_p=top_p, top_k=top_k, seed=seed)
        self.params = types.SamplingParams(**{k: v for k, v in settings.items() if v is not None})

    def submit(self, prompt: types.ModelInput, num_samples: int = 1) -> APIFuture[types.SampleResponse]:
        return self.sampling_client.sample(prompt=prompt, num_samples=num_samples, sampling_params=self.params)

    def complete(self, prompt: types.ModelInput, num_samples: int = 1) -> list[TokensWithLogprobs]:
        return _sequences(self.submit(prompt, num_samples).result())

    def complete_many(self, prompts: Sequence[types.ModelInput],
                      num_samples: int = 1) -> list[list[TokensWithLogprobs]]:
        futures = [self.submit(p, num_samples) for p in prompts]
        return [_sequences(f.result()) for f in futures]

    async def complete_async(self, prompt: types.ModelInput, num_samples: int = 1) -> list[TokensWithLogprobs]:
        return _sequences(await self.submit(prompt, num_samples).result_async())


class MessageCompleter:
    """Answers conversations: renders the generation prompt, samples, parses the reply.

    ``temperature`` defaults to 0 (greedy); ``stop`` defaults to the renderer's stop sequences;
    ``tools`` are declared in every prompt (the renderer's tool format).
    """

    def __init__(self, sampling_client: SamplingClient, renderer: Renderer, *, max_tokens: int,
                 temperature: float = 0.0, stop: Sequence[str] | Sequence[int] | None = None,
                 tools: Sequence[ToolSpec] | None = None) -> None:
        self.renderer = renderer
        self.tools = list(tools) if tools else None
        self.tokens = TokenCompleter(sampling_client, max_tokens=max_tokens, temperature=temperature,
                                     stop=renderer.get_stop_sequences() if stop is None else stop)

    def complete(self, messages: Sequence[Message]) -> Completion:
        return self.complete_many([messages])[0]

    def complete_many(self, conversations: Sequence[Sequence[Message]]) -> list[Completion]:
        prompts = [self.renderer.build_generation_prompt(list(c), tools=self.tools) for c in conversations]
        return [self._parse(samples[0]) for samples in self.tokens.complete_many(prompts)]

    def _parse(self, sample: TokensWithLogprobs) -> Completion:
        message, ok = self.renderer.parse_response(sample.tokens)
        return Completion(message, ok, sample)


def _sequences(response: types.SampleResponse) -> list[TokensWithLogprobs]:
    return [TokensWithLogprobs(list(s.tokens), None if s.logprobs is None else list(s.logprobs), s.stop_reason)
            for s in response.sequences]
