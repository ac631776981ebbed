"""The served model: OpenAI requests -> renderer and tokenizer -> ``sample`` -> OpenAI responses."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tinker import types

from cookbook.backend import service_client
from cookbook.completers import (
    MessageCompleter,
    TokenCompleter,
    TokensWithLogprobs,
    renderer_for,
    samples_of,
    sampling_client,
)
from cookbook.errors import UserError
from cookbook.primitives import SamplingClient, ServiceClient, max_context_length
from cookbook.serve.config import ServeConfig
from cookbook.serve.logprobs import MAX_LOGPROBS, completion_logprobs
from cookbook.serve.protocol import ApiError, ChatCompletionRequest, CompletionRequest
from renderers import Renderer, from_openai_messages, text_content
from renderers.openai_compat import to_openai_message


@dataclass
class ServedModel:
    """One sampling client with its renderer and tokenizer, answering OpenAI requests."""

    sampling_client: SamplingClient
    renderer: Renderer
    name: str  # the model id of /v1/models
    context_length: int | None = None  # prompt + max_tokens must fit (None: the backend checks)
    default_max_tokens: int = 1024
    max_n: int = 64
    max_rows: int = 1024
    max_pending: int = 256

    def __post_init__(self) -> None:
        self.tokenizer = self.renderer.tokenizer
        self.created = int(time.time())
        stops = self.renderer.get_stop_sequences()
        # with user stop strings the end-of-turn tokens must be strings too (one list holds one kind)
        self._end_of_turn_text = [
            s if isinstance(s, str) else str(self.tokenizer.decode([s], skip_special_tokens=False)) for s in stops]
        eos = getattr(self.tokenizer, "eos_token_id", None)
        self._eos_ids = {eos} if isinstance(eos, int) else set()
        self._pending = 0

    @classmethod
    def load(cls, config: ServeConfig, service: ServiceClient | None = None) -> ServedModel:
        """The sampling client, renderer and context length of ``config`` (loads the model)."""
        service = service or service_client(config.backend, **({"base_url": config.base_url} if config.base_url
                                                                 else {}))
        renderer = renderer_for(config.base_model, config.renderer)
        sampler = sampling_client(service, config.base_model, config.model_path)
        return cls(sampler, renderer, config.served_name, max_context_length(service, config.base_model),
                   config.max_tokens, config.max_n, config.max_rows, config.max_pending)

    # --- endpoints ----------------------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [self.model_card()]}

    def model_card(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "cookbook"}

    async def chat(self, request: ChatCompletionRequest) -> dict[str, Any]:
        self._check(request)
        user_stops = request.stops
        completer = MessageCompleter(self.sampling_client, self.renderer, temperature=request.temperature,
                                     top_p=request.top_p, seed=request.seed, tools=request.tools,
                                     stop=[*self._end_of_turn_text, *user_stops] if user_stops else None,
                                     **self._length(request))
        try:
            prompt = completer.prompt(from_openai_messages(request.messages))
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(400, f"invalid messages: {_reason(exc)}", param="messages") from None
        samples = samples_of((await self._complete(completer.tokens, [prompt], request))[0], request.n)
        choices = []
        for index, sample in enumerate(samples):
            message = completer.parse(sample).message
            reply = to_openai_message(message)
            reply["role"] = "assistant"
            if user_stops:
                reply["content"] = _cut(text_content(message), user_stops)
            finish = "length" if sample.stop_reason == "length" else "tool_calls" if reply.get("tool_calls") \
                else "stop"
            choices.append({"index": index, "message": reply, "finish_reason": finish, "logprobs": None})
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.name, "choices": choices, "usage": _usage(prompt.length, samples)}

    async def complete(self, request: CompletionRequest) -> dict[str, Any]:
        self._check(request)
        top_k = _logprobs_count(request.logprobs)
        want_logprobs = request.logprobs is not None and request.logprobs is not False
        completer = TokenCompleter(self.sampling_client, temperature=request.temperature, top_p=request.top_p,
                                   seed=request.seed, stop=request.stops, **self._length(request),
                                   prompt_logprobs=max(top_k, 1) if request.echo and want_logprobs else 0)
        prompts = [types.ModelInput.from_ints(tokens) for tokens in self._prompt_tokens(request.prompt)]
        responses = await self._complete(completer, prompts, request)
        choices = []
        for i, response in enumerate(responses):
            prompt_tokens = prompts[i].to_ints()
            echoed = self.tokenizer.decode(prompt_tokens, skip_special_tokens=False) if request.echo else ""
            for j, sequence in enumerate(response.sequences):
                tokens = list(sequence.tokens)
                if sequence.stop_reason == "stop" and not request.stops and tokens and tokens[-1] in self._eos_ids:
                    tokens = tokens[:-1]
                text = str(self.tokenizer.decode(tokens, skip_special_tokens=False))
                if request.stops:
                    text = _cut(text, request.stops)
                logprobs = None if not want_logprobs else completion_logprobs(
                    self.tokenizer, prompt_tokens, response, tokens, sequence.logprobs, echo=request.echo)
                choices.append({"index": i * request.n + j, "text": echoed + text, "logprobs": logprobs,
                                "finish_reason": "length" if sequence.stop_reason == "length" else "stop"})
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.name, "choices": choices,
                "usage": _usage(sum(p.length for p in prompts), [s for r in responses for s in r.sequences])}

    # --- helpers ------------------------------------------------------------------------------
    def _check(self, request: ChatCompletionRequest | CompletionRequest) -> None:
        if request.model is not None and request.model != self.name:
            raise ApiError(404, f"the model {request.model!r} does not exist; this server serves {self.name!r}",
                           param="model", code="model_not_found")
        if request.stream:
            raise ApiError(400, "streaming is not supported by this server; send stream=false", param="stream")
        if request.logprobs and isinstance(request, ChatCompletionRequest):
            raise ApiError(400, "logprobs are not supported for chat completions (use /v1/completions)",
                           param="logprobs")
        if request.n > self.max_n:
            raise ApiError(400, f"n is {request.n}; this server allows at most {self.max_n}", param="n")

    def _prompt_tokens(self, prompt: str | list[str] | list[int] | list[list[int]]) -> list[list[int]]:
        if isinstance(prompt, str):
            batch: list[Any] = [prompt]
        elif prompt and all(isinstance(t, int) for t in prompt):
            batch = [prompt]
        else:
            batch = list(prompt)
        if not batch:
            raise ApiError(400, "prompt is empty", param="prompt")
        tokens = [self.tokenizer.encode(p, add_special_tokens=True) if isinstance(p, str) else list(p) for p in batch]
        if any(not t for t in tokens):
            raise ApiError(400, "prompt is empty", param="prompt")
        return tokens

    def _length(self, request: ChatCompletionRequest | CompletionRequest) -> dict[str, Any]:
        """The completer's ``max_tokens``: the request's (too long for the context: the backend says so,
        400), else the server's default lowered to what fits in the context."""
        if request.max_new_tokens is not None:
            return {"max_tokens": request.max_new_tokens}
        return {"max_tokens": self.default_max_tokens, "context_length": self.context_length}

    async def _complete(self, completer: TokenCompleter, prompts: Sequence[types.ModelInput],
                        request: ChatCompletionRequest | CompletionRequest) -> list[types.SampleResponse]:
        """Every prompt's response; all requests reach the backend before any is awaited (so they are batched)."""
        if len(prompts) * request.n > self.max_rows:
            raise ApiError(400, f"{len(prompts)} prompts x n={request.n} is more than the {self.max_rows} rows "
                                "one request may ask for", param="n")
        if self._pending >= self.max_pending:
            raise ApiError(429, f"{self._pending} requests are being answered; retry shortly",
                           kind="rate_limit_error", code="rate_limit_exceeded")
        self._pending += 1
        try:
            return await self._complete_now(completer, prompts, request)
        finally:
            self._pending -= 1

    async def _complete_now(self, completer: TokenCompleter, prompts: Sequence[types.ModelInput],
                            request: ChatCompletionRequest | CompletionRequest) -> list[types.SampleResponse]:
        for prompt in prompts:
            if completer.params(prompt) is None:
                raise ApiError(400, f"the prompt has {prompt.length} tokens; the model's context is "
                               f"{self.context_length}", param="messages", code="context_length_exceeded")
        try:
            responses = await asyncio.gather(*(completer.respond_async(p, request.n) for p in prompts))
        except UserError as exc:  # the backend rejected it (bad token ids, over-long, ...)
            raise _rejected(exc) from None
        return [r for r in responses if r is not None]  # None only without room, refused above


def _logprobs_count(value: bool | int | None) -> int:
    """``logprobs`` of a completions request: how many top tokens per position (0 when absent)."""
    if value is None or value is False:
        return 0
    if value is True or not 0 <= int(value) <= MAX_LOGPROBS:
        raise ApiError(400, f"logprobs must be an integer from 0 to {MAX_LOGPROBS}", param="logprobs")
    return int(value)


def _cut(text: str, stops: Sequence[str]) -> str:
    """``text`` up to the first stop string (OpenAI returns text without the stop sequence)."""
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(cuts)] if cuts else text


def _usage(prompt_tokens: int, sequences: Sequence[TokensWithLogprobs | types.SampledSequence]) -> dict[str, int]:
    completion = sum(len(s.tokens) for s in sequences)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def _rejected(exc: UserError) -> ApiError:
    code = "context_length_exceeded" if "ContextLength" in type(exc).__name__ else None
    return ApiError(400, _reason(exc), code=code)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
