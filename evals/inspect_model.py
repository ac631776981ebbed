"""An Inspect AI model provider: any Inspect task on a cookbook base model or checkpoint.

    inspect eval my_task.py --model cookbook/tiny                                   # a base model
    inspect eval my_task.py --model cookbook/local://<run>/sampler_weights/final    # a checkpoint
    inspect eval my_task.py --model cookbook/tinker://<run>/sampler_weights/final \\
        -M backend=tinker --model-base-url http://127.0.0.1:8000                   # a Tinker-compatible server

The model name after ``cookbook/`` is a base model (``tiny``, a Hugging Face id or directory) or a
checkpoint path (``local://``, ``tinker://`` or a checkpoint directory), whose base model is asked
of the sampling client (or given with ``-M base_model=...``). Model args (``-M key=value``):
``backend`` (``local``, the default, or ``tinker``; the server is Inspect's ``--model-base-url``,
the key ``--model-api-key`` or ``$TINKER_API_KEY``), ``base_model``, ``renderer`` (default: the
recommended one for the base model), ``max_tokens`` (when the task's config gives none; default
1024). In code, ``cookbook_model(sampling_client, renderer)`` wraps a sampling client you already
have (what ``cookbook eval inspect:<task>`` and the Inspect eval hook do).

Each Inspect ``generate`` renders the conversation (and tools) with the model's renderer, samples
through the sampling client (``temperature`` 0 unless the config sets it; ``max_tokens``,
``top_p``, ``top_k``, ``seed``, ``stop_seqs``, ``num_choices`` honoured) and parses the reply back
(thinking as reasoning content, tool calls as Inspect tool calls). Many samples in flight reach the
backend together, so the local backend decodes them in one batch.

The provider is registered by importing this module: the ``inspect_ai`` entry point of this
package (``pyproject.toml``) does that for the ``inspect`` command.

May import ``cookbook``, ``renderers`` and ``inspect_ai``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ContentReasoning,
    ContentText,
    GenerateConfig,
    Model,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolCall, ToolChoice, ToolInfo
from tinker import types

from cookbook.errors import ConfigError
from cookbook.primitives import SamplingClient, max_context_length, ready
from cookbook.tokenizer_utils import get_tokenizer
from renderers import Message, Renderer, get_recommended_renderer_name, get_renderer, text_content

PROVIDER = "cookbook"
DEFAULT_MAX_TOKENS = 1024
BACKENDS = ("local", "tinker")


def is_checkpoint(name: str) -> bool:
    return "://" in name or (Path(name).is_dir() and (Path(name) / "checkpoint.json").is_file())


class CookbookModelAPI(ModelAPI):
    """Inspect's model interface over a cookbook sampling client and renderer."""

    def __init__(self, model_name: str, base_url: str | None = None, api_key: str | None = None,
                 config: GenerateConfig | None = None, *, backend: str = "local", base_model: str | None = None,
                 renderer: str | Renderer | None = None, max_tokens: int | None = None,
                 sampling_client: SamplingClient | None = None, context_length: int | None = None,
                 **model_args: Any) -> None:
        super().__init__(model_name, base_url, api_key, ["TINKER_API_KEY"], config or GenerateConfig())
        if model_args:
            raise ConfigError(f"unknown model args for {PROVIDER}/: {', '.join(sorted(model_args))}; known: backend, "
                              "base_model, renderer, max_tokens")
        self.default_max_tokens = int(max_tokens or DEFAULT_MAX_TOKENS)
        if backend not in BACKENDS:
            raise ConfigError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}")
        self.backend, self.base_model, self.renderer_name = backend, base_model, renderer
        self.context_length = context_length
        self.sampling_client = sampling_client
        self.renderer = renderer if isinstance(renderer, Renderer) else None
        # Connecting (loading a model) waits for the first generate: Inspect also builds providers
        # just to look up model information by name.
        self._connect_lock = threading.Lock()

    def _ready(self) -> tuple[SamplingClient, Renderer]:
        with self._connect_lock:
            if self.sampling_client is None:
                self.sampling_client, self.base_model = self._connect(self.model_name, self.base_model)
            if self.renderer is None:
                base_model = self.base_model or self.model_name
                try:
                    self.renderer = get_renderer(self.renderer_name or get_recommended_renderer_name(base_model),
                                                 get_tokenizer(base_model))
                except (KeyError, ValueError) as exc:
                    raise ConfigError(f"renderer for {base_model}: {exc}") from None
            return self.sampling_client, self.renderer

    def _connect(self, model_name: str, base_model: str | None) -> tuple[SamplingClient, str]:
        from cookbook.backend import service_client

        options = {k: v for k, v in (("base_url", self.base_url), ("api_key", self.api_key)) if v}
        service = service_client("tinker", **options) if self.backend == "tinker" else service_client("local")
        if is_checkpoint(model_name):
            sampler = ready(service.create_sampling_client(model_path=model_name))
            base_model = base_model or sampler.get_base_model()
        else:
            base_model = base_model or model_name
            sampler = ready(service.create_sampling_client(base_model=base_model))
        self.context_length = max_context_length(service, base_model)
        return sampler, base_model

    def max_connections(self) -> int:
        return 64  # requests in flight: the backend batches them

    async def generate(self, input: list[ChatMessage], tools: list[ToolInfo], tool_choice: ToolChoice,
                       config: GenerateConfig) -> ModelOutput:
        sampling_client, renderer = await asyncio.to_thread(self._ready)
        messages = [to_message(m) for m in input]
        if config.system_message:
            messages.insert(0, {"role": "system", "content": config.system_message})
        specs = [{"type": "function", "function": t.model_dump(exclude_none=True)} for t in tools] or None
        prompt = renderer.build_generation_prompt(messages, tools=specs)
        max_tokens = config.max_tokens or self.default_max_tokens
        if self.context_length is not None:
            max_tokens = min(max_tokens, self.context_length - prompt.length)
            if max_tokens < 1:
                return ModelOutput.from_content(self.model_name, "", stop_reason="model_length")
        if config.stop_seqs:  # one list holds one kind: the end-of-turn tokens as text too
            stop: list[str] | list[int] = [*(s if isinstance(s, str) else renderer.tokenizer.decode([s])
                                             for s in renderer.get_stop_sequences()), *config.stop_seqs]
        else:
            stop = renderer.get_stop_sequences()
        settings = dict(max_tokens=max_tokens, temperature=0.0 if config.temperature is None else config.temperature,
                        top_p=config.top_p, top_k=config.top_k, seed=config.seed, stop=stop)
        params = types.SamplingParams(**{k: v for k, v in settings.items() if v is not None})
        response = await sampling_client.sample(prompt=prompt, num_samples=config.num_choices or 1,
                                                     sampling_params=params).result_async()
        choices = []
        for sequence in response.sequences:
            message, _ = renderer.parse_response(list(sequence.tokens))
            text = text_content(message)
            if config.stop_seqs:
                cuts = [i for i in (text.find(s) for s in config.stop_seqs) if i >= 0]
                text = text[: min(cuts)] if cuts else text
            calls = [to_tool_call(call) for call in message.get("tool_calls") or []]
            content: list[Any] = [ContentText(text=text)]
            if message.get("thinking"):
                content.insert(0, ContentReasoning(reasoning=message["thinking"]))
            reply = ChatMessageAssistant(content=content if len(content) > 1 else text, tool_calls=calls or None,
                                         model=self.model_name, source="generate")
            reason = "max_tokens" if sequence.stop_reason == "length" else "tool_calls" if calls else "stop"
            choices.append(ChatCompletionChoice(message=reply, stop_reason=reason))
        output_tokens = sum(len(s.tokens) for s in response.sequences)
        usage = ModelUsage(input_tokens=prompt.length, output_tokens=output_tokens,
                           total_tokens=prompt.length + output_tokens)
        return ModelOutput(model=self.model_name, choices=choices, usage=usage)


def to_message(message: ChatMessage) -> Message:
    """An Inspect chat message as a renderer message (text content, reasoning, tool calls and results)."""
    out: Message = {"role": message.role, "content": message.text}
    if message.role == "assistant":
        reasoning = [c.reasoning for c in message.content if isinstance(c, ContentReasoning)] \
            if not isinstance(message.content, str) else []
        if reasoning:
            out["thinking"] = "\n".join(reasoning)
        if message.tool_calls:
            out["tool_calls"] = [{"id": call.id, "type": "function",
                                  "function": {"name": call.function, "arguments": json.dumps(call.arguments)}}
                                 for call in message.tool_calls]
    if message.role == "tool":
        if message.tool_call_id:
            out["tool_call_id"] = message.tool_call_id
        if message.function:
            out["name"] = message.function
    return out


def to_tool_call(call: dict[str, Any]) -> ToolCall:
    function = call["function"]
    arguments = function.get("arguments") or {}
    error = None
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            arguments, error = {}, f"tool call arguments are not JSON: {exc}"
    return ToolCall(id=call.get("id") or f"call_{uuid.uuid4().hex[:12]}", function=function["name"],
                    arguments=arguments if isinstance(arguments, dict) else {"value": arguments}, parse_error=error)


@modelapi(name=PROVIDER)
def _provider() -> type[ModelAPI]:
    return CookbookModelAPI


def cookbook_model(sampling_client: SamplingClient, renderer: Renderer, *, name: str = "model",
                   context_length: int | None = None, max_tokens: int | None = None,
                   config: GenerateConfig | None = None) -> Model:
    """An Inspect ``Model`` that samples from ``sampling_client`` through ``renderer``."""
    from inspect_ai.model import get_model

    return get_model(f"{PROVIDER}/{name}", config=config or GenerateConfig(), memoize=False,
                     sampling_client=sampling_client, renderer=renderer, context_length=context_length,
                     max_tokens=max_tokens)
