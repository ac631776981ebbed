"""The tokenizer routes vLLM serves and lm-evaluation-harness's remote tokenizer calls.

- ``GET /tokenizer_info``: ``eos_token``, ``bos_token``, ``pad_token`` (strings or null),
  ``chat_template`` (the tokenizer's, if it has one; the server itself renders chats with its
  renderer), ``model_max_length`` (the context length when known);
- ``POST /tokenize`` ``{"prompt": text, "add_special_tokens": bool}`` -> ``{"tokens", "count",
  "max_model_len"}``;
- ``POST /detokenize`` ``{"tokens": [ids]}`` -> ``{"prompt": text}``.

May import ``cookbook.serve.protocol`` and ``pydantic``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cookbook.serve.protocol import ApiError


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str
    add_special_tokens: bool = True
    model: str | None = None


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tokens: list[int]
    model: str | None = None


def tokenizer_info(tokenizer: Any, context_length: int | None) -> dict[str, Any]:
    def token(name: str) -> str | None:
        value = getattr(tokenizer, name, None)
        return value if isinstance(value, str) else None
    return {"eos_token": token("eos_token"), "bos_token": token("bos_token"), "pad_token": token("pad_token"),
            "chat_template": getattr(tokenizer, "chat_template", None), "model_max_length": context_length}


def tokenize(tokenizer: Any, request: TokenizeRequest, context_length: int | None) -> dict[str, Any]:
    tokens = tokenizer.encode(request.prompt, add_special_tokens=request.add_special_tokens)
    return {"tokens": tokens, "count": len(tokens), "max_model_len": context_length}


def detokenize(tokenizer: Any, request: DetokenizeRequest) -> dict[str, Any]:
    vocab = len(tokenizer)
    if any(not 0 <= t < vocab for t in request.tokens):
        raise ApiError(400, f"token ids must be in [0, {vocab})", param="tokens")
    return {"prompt": tokenizer.decode(request.tokens, skip_special_tokens=False)}
