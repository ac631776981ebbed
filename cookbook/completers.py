"""The one sampling path: which sampler and renderer, and the completers every reply goes through.

- :func:`sampling_client`: a sampling client of a checkpoint, or of the base model when there is none;
- :func:`renderer_for`: the renderer for a model (a given name, else the model's recommended one);
  an unknown name is a one-line :class:`cookbook.errors.ConfigError`. :func:`known_renderer` is the
  chz validator that checks a ``renderer`` option when the command line is parsed;
- :class:`TokenCompleter`: prompt tokens -> sampled tokens, their logprobs and the stop reason
  (what RL rollouts call);
- :class:`MessageCompleter`: a conversation -> the assistant's next message, through a renderer
  (what evals, hooks, teachers and the OpenAI-compatible server call).

Both completers take any :class:`cookbook.primitives.SamplingClient` (local or hosted), give
``num_samples`` replies per prompt, take a sampling ``seed`` per request, have ``async`` methods
that never block an event loop, and with ``context_length`` lower ``max_tokens`` to what fits after
the prompt (a prompt that leaves no room gets empty replies cut off at ``"length"``, with no
request). ``complete_many`` submits every request before waiting for any, so the backend batches them.

May import ``cookbook.primitives``, ``cookbook.errors``, ``cookbook.tokenizer_utils`` and ``renderers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tinker import APIFuture, types

from cookbook.errors import ConfigError
from cookbook.primitives import SamplingClient, ServiceClient, ready, result_async
from cookbook.tokenizer_utils import get_tokenizer
from renderers import (
    Message,
    Renderer,
    ToolSpec,
    get_recommended_renderer_name,
    get_renderer,
    renderer_names,
    text_content,
)

Stop = Sequence[str] | Sequence[int]


def sampling_client(service: ServiceClient, base_model: str, model_path: str | None = None) -> SamplingClient:
    """A sampling client of ``model_path`` (a checkpoint of ``base_model``), or of ``base_model`` itself."""
    if model_path:
        return ready(service.create_sampling_client(model_path=model_path))
    return ready(service.create_sampling_client(base_model=base_model))


def check_renderer_name(name: str) -> str:
    """``name`` when it is a known renderer; a one-line :class:`ConfigError` naming the known ones otherwise."""
    if name not in renderer_names():
        raise ConfigError(f"renderer {name!r} is unknown; choose one of {', '.join(renderer_names())}")
    return name


def known_renderer(config: Any, attr: str) -> None:
    """chz field validator: the option ``attr`` is None (the model's recommended renderer) or a known name."""
    value = getattr(config, attr)
    if value is not None:
        check_renderer_name(value)


def renderer_for(base_model: str, renderer: str | None = None) -> Renderer:
    """``renderer`` (default: the recommended renderer for ``base_model``) over ``base_model``'s tokenizer
    (loaded first: a model that cannot be loaded is the error to report)."""
    tokenizer = get_tokenizer(base_model)
    name = check_renderer_name(renderer) if renderer is not None else get_recommended_renderer_name(base_model)
    try:  # `auto` picks the family renderer, else the model's own chat template
        return get_renderer(name, tokenizer, model_name=base_model)
    except ValueError as exc:  # e.g. `auto` on a model whose tokenizer has no chat template
        raise ConfigError(f"renderer: {exc}") from None


@dataclass(frozen=True)
class TokensWithLogprobs:
    """One sampled continuation."""

    tokens: list[int]
    logprobs: list[float] | None  # per sampled token, log_softmax(logits / temperature)
    stop_reason: str  # "stop" (a stop sequence or EOS) or "length" (max_tokens, or the context's end)
    sequence_id: str | None = None  # SampledSequence.sequence_id: what training datums' provenance names


@dataclass(frozen=True)
class Completion:
    """The assistant's message parsed from one sampled continuation."""

    message: Message
    parsed: bool  # False when the response was malformed (e.g. cut off before its end-of-turn token)
    tokens: TokensWithLogprobs
    prompt_tokens: int = 0  # the length of the prompt it answers

    @property
    def text(self) -> str:
        return text_content(self.message)


class TokenCompleter:
    """Samples continuations of token prompts with fixed sampling settings (see the module docstring)."""

    def __init__(self, sampling_client: SamplingClient, *, max_tokens: int, temperature: float = 1.0,
                 stop: Stop | None = None, top_p: float | None = None, top_k: int | None = None,
                 seed: int | None = None, context_length: int | None = None, prompt_logprobs: int = 0) -> None:
        self.sampling_client, self.max_tokens, self.context_length = sampling_client, max_tokens, context_length
        # > 0: each response also carries the prompt's logprobs and its top-``prompt_logprobs`` alternatives
        self.prompt_options: dict[str, Any] = (
            {"include_prompt_logprobs": True, "topk_prompt_logprobs": prompt_logprobs} if prompt_logprobs else {})
        self.settings: dict[str, Any] = {k: v for k, v in dict(
            temperature=temperature, stop=None if stop is None else list(stop), top_p=top_p, top_k=top_k,
            seed=seed).items() if v is not None}

    def params(self, prompt: types.ModelInput, seed: int | None = None) -> types.SamplingParams | None:
        """The request's sampling parameters; None when the prompt leaves no room in the context."""
        max_tokens = self.max_tokens
        if self.context_length is not None:
            max_tokens = min(max_tokens, self.context_length - prompt.length)
            if max_tokens < 1:
                return None
        return types.SamplingParams(max_tokens=max_tokens, **{**self.settings,
                                                              **({"seed": seed} if seed is not None else {})})

    def submit(self, prompt: types.ModelInput, num_samples: int = 1,
               seed: int | None = None) -> APIFuture[types.SampleResponse] | None:
        """The request's future (None, and no request, when the prompt leaves no room)."""
        params = self.params(prompt, seed)
        if params is None:
            return None
        return self.sampling_client.sample(prompt=prompt, num_samples=num_samples, sampling_params=params,
                                           **self.prompt_options)

    def complete(self, prompt: types.ModelInput, num_samples: int = 1,
                 seed: int | None = None) -> list[TokensWithLogprobs]:
        return self.complete_many([prompt], num_samples, None if seed is None else [seed])[0]

    def complete_many(self, prompts: Sequence[types.ModelInput], num_samples: int = 1,
                      seeds: Sequence[int | None] | None = None) -> list[list[TokensWithLogprobs]]:
        """Every prompt's samples (``seeds``: one per prompt); all requests go in before any is awaited."""
        futures = [self.submit(p, num_samples, None if seeds is None else seeds[i]) for i, p in enumerate(prompts)]
        return [samples_of(None if f is None else f.result(), num_samples) for f in futures]

    async def complete_async(self, prompt: types.ModelInput, num_samples: int = 1,
                             seed: int | None = None) -> list[TokensWithLogprobs]:
        return samples_of(await self.respond_async(prompt, num_samples, seed), num_samples)

    async def respond_async(self, prompt: types.ModelInput, num_samples: int = 1,
                            seed: int | None = None) -> types.SampleResponse | None:
        """The whole response (prompt logprobs too, when asked for); None when the prompt leaves no room."""
        future = self.submit(prompt, num_samples, seed)
        if future is None:
            return None
        response: types.SampleResponse = await result_async(future)
        return response


class MessageCompleter:
    """Answers conversations: renders the generation prompt, samples, parses the reply.

    ``temperature`` defaults to 0 (greedy); ``stop`` defaults to the renderer's stop sequences;
    ``tools`` are declared in every prompt (the renderer's tool format); the other options are the
    :class:`TokenCompleter`'s.
    """

    def __init__(self, sampling_client: SamplingClient, renderer: Renderer, *, max_tokens: int,
                 temperature: float = 0.0, stop: Stop | None = None, tools: Sequence[ToolSpec] | None = None,
                 top_p: float | None = None, seed: int | None = None, context_length: int | None = None) -> None:
        self.renderer = renderer
        self.tools = list(tools) if tools else None
        self.tokens = TokenCompleter(sampling_client, max_tokens=max_tokens, temperature=temperature,
                                     stop=renderer.get_stop_sequences() if stop is None else stop, top_p=top_p,
                                     seed=seed, context_length=context_length)

    def prompt(self, messages: Sequence[Message]) -> types.ModelInput:
        return self.renderer.build_generation_prompt(list(messages), tools=self.tools)

    def complete(self, messages: Sequence[Message]) -> Completion:
        return self.complete_many([messages])[0]

    def complete_many(self, conversations: Sequence[Sequence[Message]], num_samples: int = 1,
                      seeds: Sequence[int | None] | None = None) -> list[Completion]:
        """``num_samples`` replies to each conversation, in order (``seeds``: one per conversation)."""
        prompts = [self.prompt(c) for c in conversations]
        samples = self.tokens.complete_many(prompts, num_samples, seeds)
        return [self.parse(s, p.length) for p, group in zip(prompts, samples) for s in group]

    async def complete_async(self, messages: Sequence[Message], num_samples: int = 1,
                             seed: int | None = None) -> list[Completion]:
        prompt = self.prompt(messages)
        return [self.parse(s, prompt.length) for s in await self.tokens.complete_async(prompt, num_samples, seed)]

    def parse(self, sample: TokensWithLogprobs, prompt_tokens: int = 0) -> Completion:
        if not sample.tokens:  # nothing sampled (no room left in the context): an unfinished, empty reply
            return Completion({"role": "assistant", "content": ""}, False, sample, prompt_tokens)
        message, ok = self.renderer.parse_response(sample.tokens)
        return Completion(message, ok, sample, prompt_tokens)


def samples_of(response: types.SampleResponse | None, num_samples: int) -> list[TokensWithLogprobs]:
    """A response's sequences (``num_samples`` empty ones for None: no room in the context)."""
    if response is None:
        return [TokensWithLogprobs([], [], "length") for _ in range(num_samples)]
    return [TokensWithLogprobs(list(s.tokens), None if s.logprobs is None else list(s.logprobs), s.stop_reason,
                               getattr(s, "sequence_id", None)) for s in response.sequences]
