"""Request bodies of the OpenAI API (the fields this server reads), and OpenAI-shaped errors."""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from cookbook.http_server import JsonBodyError, parse_json_object


class ApiError(Exception):
    """A request the server refuses: an HTTP status and an OpenAI error body."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        return error_body(self.message, kind=self.kind, param=self.param, code=self.code)


def error_body(message: str, *, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class _SamplingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown OpenAI options are ignored, as most servers do

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)  # what the backend's generator accepts
    stream: bool = False
    logprobs: bool | int | None = None

    @pydantic.field_validator("stop")
    @classmethod
    def _stops(cls, stop: str | list[str] | None) -> list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop
        if stops is not None and (len(stops) > 16 or any(not s for s in stops)):
            raise ValueError("stop must be a non-empty string or a list of at most 16 non-empty strings")
        return stops or None

    @property
    def max_new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stops(self) -> list[str] | None:
        return self.stop  # type: ignore[return-value]  # normalised to a list by the validator


class ChatCompletionRequest(_SamplingRequest):
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None


class CompletionRequest(_SamplingRequest):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False


def parse_body(raw: bytes, model: type[pydantic.BaseModel]) -> Any:
    """The JSON body validated as ``model``; 400 with an OpenAI error body when it is not one."""
    try:
        value = parse_json_object(raw)
    except JsonBodyError as exc:
        raise ApiError(400, str(exc)) from None
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3])
        raise ApiError(400, f"invalid request: {problems}", param=param) from None
