"""Checks run on every request before it is queued (see ``errors``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tinker import types

from . import errors
from .losses import LOSSES, LossSpec
from .prompt_scores import PromptRequest, target_ids

SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what torch.Generator.manual_seed accepts


def model_input_tokens(model_input: types.ModelInput, *, what: str) -> list[int]:
    if not isinstance(model_input, types.ModelInput):
        raise errors.InvalidRequestError(f"{what} must be a tinker.types.ModelInput, got {type(model_input).__name__}")
    chunks = []
    for chunk in model_input.chunks:
        if not isinstance(chunk, types.EncodedTextChunk):
            raise errors.InvalidRequestError(
                f"{what}: the local backend supports text chunks only, got a {type(chunk).__name__}")
        chunks.append(chunk)
    tokens = [int(t) for chunk in chunks for t in chunk.tokens]
    if not tokens:
        raise errors.EmptyInputError(f"{what} is empty")
    return tokens


def check_tokens(tokens: Sequence[int] | np.ndarray, vocab_size: int, *, what: str) -> None:
    arr = np.asarray(tokens)
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        bad = int(arr[(arr < 0) | (arr >= vocab_size)].flat[0])
        raise errors.TokenOutOfVocabularyError(
            f"{what} contains token id {bad}, outside the vocabulary [0, {vocab_size})")


def check_context(length: int, max_context: int, *, what: str) -> None:
    if length > max_context:
        raise errors.ContextLengthExceededError(f"{what} has {length} tokens; the model's context is {max_context}")


def loss_spec(loss_fn: str, loss_fn_config: Mapping[str, float] | None) -> LossSpec:
    if loss_fn not in LOSSES:
        raise errors.UnknownLossError(f"unknown loss {loss_fn!r}; built-in losses: {', '.join(LOSSES)}")
    spec = LOSSES[loss_fn]
    for key, value in (loss_fn_config or {}).items():
        if key not in spec.config_defaults:
            known = ", ".join(spec.config_defaults) or "none"
            raise errors.InvalidRequestError(f"loss {loss_fn!r} has no config key {key!r} (known: {known})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise errors.InvalidRequestError(f"loss_fn_config[{key!r}] must be a finite number, got {value!r}")
    return spec


# An optional loss input of every loss: several documents packed into one datum. Equal ids mark one
# document (a contiguous run of positions); positions restart at each document's first token and no
# token attends to another document's tokens, so a packed datum computes what its documents would
# compute as separate datums (the local backend runs them so); only each document must fit the context.
DOCUMENT_IDS = "document_ids"


@dataclass(frozen=True)
class PreparedDatum:
    tokens: list[int]
    targets: torch.Tensor  # int64 [N] or [N, K]
    inputs: dict[str, torch.Tensor]  # float32, same leading length N
    documents: torch.Tensor | None = None  # int64 [N] document index per position (0, 1, ...), or None


def prepare_data(
    data: Sequence[types.Datum],
    *,
    required: Sequence[str],
    vocab_size: int,
    max_context: int,
    multi_target: bool = False,
) -> list[PreparedDatum]:
    """Validate datums and convert their inputs to tensors (nothing is mutated)."""
    if isinstance(data, types.Datum) or not isinstance(data, Sequence):
        raise errors.InvalidRequestError("data must be a list of tinker.types.Datum")
    if len(data) == 0:
        raise errors.EmptyInputError("data is empty")
    prepared = []
    for i, datum in enumerate(data):
        if not isinstance(datum, types.Datum):
            raise errors.InvalidRequestError(f"data[{i}] must be a tinker.types.Datum, got {type(datum).__name__}")
        tokens = model_input_tokens(datum.model_input, what=f"data[{i}].model_input")
        n = len(tokens)
        check_tokens(tokens, vocab_size, what=f"data[{i}].model_input")
        given = datum.loss_fn_inputs
        documents = _documents(given[DOCUMENT_IDS], n, i) if DOCUMENT_IDS in given else None
        if documents is None:
            check_context(n, max_context, what=f"data[{i}].model_input")
        else:  # each document runs as its own sequence: a packed row may be longer than the context
            check_context(int(torch.bincount(documents).max()), max_context,
                          what=f"the longest document of data[{i}].model_input")
        for key in ("target_tokens", *required):
            if key not in given:
                raise errors.MissingLossInputError(f"data[{i}] is missing loss input {key!r}")
        targets = torch.from_numpy(np.array(given["target_tokens"].to_numpy(), dtype=np.int64, copy=True))
        if targets.dim() not in ((1, 2) if multi_target else (1,)) or targets.shape[0] != n:
            raise errors.LengthMismatchError(
                f"data[{i}]: target_tokens has shape {list(targets.shape)}; expected [{n}]"
                + (f" or [{n}, K]" if multi_target else "") + " to match the model input length")
        check_tokens(targets.numpy(), vocab_size, what=f"data[{i}].target_tokens")
        inputs = {}
        for key in required:
            value = torch.from_numpy(np.array(given[key].to_numpy(), dtype=np.float32, copy=True))
            expected = list(targets.shape) if key == "weights" else [n]
            if list(value.shape) != expected:
                raise errors.LengthMismatchError(
                    f"data[{i}]: {key} has shape {list(value.shape)}; expected {expected} (the model input length)")
            if not torch.isfinite(value).all():
                raise errors.NonFiniteInputError(f"data[{i}]: {key} contains NaN or infinity")
            inputs[key] = value
        prepared.append(PreparedDatum(tokens, targets, inputs, documents))
    return prepared


def _documents(ids: types.TensorData, n: int, i: int) -> torch.Tensor:
    """``document_ids`` as document indices 0, 1, ... per position; each document must be one run."""
    raw = np.asarray(ids.to_numpy())
    if raw.shape != (n,):
        raise errors.LengthMismatchError(
            f"data[{i}]: {DOCUMENT_IDS} has shape {list(raw.shape)}; expected [{n}] (the model input length)")
    if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.all(np.isfinite(raw))
                                          and np.all(raw == np.round(raw))):
        raise errors.InvalidRequestError(f"data[{i}]: {DOCUMENT_IDS} must be integers")
    starts = np.flatnonzero(raw[1:] != raw[:-1]) + 1
    if len(set(raw[np.concatenate([[0], starts])].tolist())) != len(starts) + 1:
        raise errors.InvalidRequestError(
            f"data[{i}]: {DOCUMENT_IDS} must give each document one contiguous run of positions")
    index = np.zeros(n, dtype=np.int64)
    index[starts] = 1
    return torch.from_numpy(np.cumsum(index))


def prompt_request(tokens: Sequence[int], vocab_size: int, *, include_prompt_logprobs: bool = False,
                   topk_prompt_logprobs: int = 0, target_prompt_logprobs: types.TensorData | None = None,
                   prompt_alt_tokens_k: int = 0, prompt_logprobs_last_n: int | None = None) -> PromptRequest:
    """Validate what a sample request asks about its prompt (the SDK's rules)."""
    for name, value in (("topk_prompt_logprobs", topk_prompt_logprobs), ("prompt_alt_tokens_k", prompt_alt_tokens_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise errors.InvalidRequestError(f"{name} must be an integer >= 0, got {value!r}")
    rows = len(tokens) - 1
    if prompt_logprobs_last_n is not None:
        if not include_prompt_logprobs:
            raise errors.InvalidRequestError(
                "prompt_logprobs_last_n applies to prompt logprobs; set include_prompt_logprobs")
        if isinstance(prompt_logprobs_last_n, bool) or not 1 <= prompt_logprobs_last_n <= rows:
            raise errors.InvalidRequestError(f"prompt_logprobs_last_n must be between 1 and len(prompt) - 1 = {rows}, "
                                             f"got {prompt_logprobs_last_n!r}")
    if target_prompt_logprobs is not None:
        if not isinstance(target_prompt_logprobs, types.TensorData) or target_prompt_logprobs.dtype != "int64":
            raise errors.InvalidRequestError("target_prompt_logprobs must be an int64 tinker.types.TensorData")
        shape = target_prompt_logprobs.shape
        if shape is None or len(shape) != 2 or shape[0] != rows:
            raise errors.LengthMismatchError(
                f"target_prompt_logprobs has shape {shape}; expected [len(prompt) - 1 = {rows}, K]")
        ids = target_ids(target_prompt_logprobs)
        if not (ids >= 0).any():
            raise errors.InvalidRequestError("target_prompt_logprobs names no token id (every cell is -1)")
        if (ids < -1).any() or (ids >= vocab_size).any():
            bad = int(ids[(ids < -1) | (ids >= vocab_size)].flat[0])
            raise errors.TokenOutOfVocabularyError(
                f"target_prompt_logprobs contains token id {bad}, outside the vocabulary [0, {vocab_size}) (or -1)")
    return PromptRequest(include_logprobs=bool(include_prompt_logprobs), topk=topk_prompt_logprobs,
                         last_n=prompt_logprobs_last_n, target=target_prompt_logprobs, alt_k=prompt_alt_tokens_k)


def sampling_request(
    prompt: types.ModelInput, num_samples: int, params: types.SamplingParams, *, vocab_size: int, max_context: int,
    topk_sample_logprobs: int = 0,
) -> tuple[list[int], int]:
    """Validate a sample request; returns the prompt tokens and the effective max_tokens."""
    if not isinstance(params, types.SamplingParams):
        raise errors.InvalidRequestError(
            f"sampling_params must be a tinker.types.SamplingParams, got {type(params).__name__}")
    tokens = model_input_tokens(prompt, what="prompt")
    check_tokens(tokens, vocab_size, what="prompt")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise errors.InvalidRequestError(f"num_samples must be a positive integer, got {num_samples!r}")
    for name in ("temperature", "top_p"):
        if not math.isfinite(getattr(params, name)):
            raise errors.NonFiniteInputError(f"sampling_params.{name} must be finite")
    if params.temperature < 0:
        raise errors.InvalidRequestError(f"temperature must be >= 0, got {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise errors.InvalidRequestError(f"top_p must be in (0, 1], got {params.top_p}")
    if params.top_k == 0 or params.top_k < -1:
        raise errors.InvalidRequestError(f"top_k must be -1 (no limit) or >= 1, got {params.top_k}")
    seed = params.seed
    if seed is not None and (isinstance(seed, bool) or not SEED_MIN <= seed <= SEED_MAX):
        raise errors.InvalidRequestError(f"seed must be an integer in [-2**63, 2**64 - 1], got {seed!r}")
    if isinstance(topk_sample_logprobs, bool) or not isinstance(topk_sample_logprobs, int) or topk_sample_logprobs < 0:
        raise errors.InvalidRequestError(f"topk_sample_logprobs must be an integer >= 0, got {topk_sample_logprobs!r}")
    if params.stop is not None and not isinstance(params.stop, str):
        for s in params.stop:
            if isinstance(s, bool) or not isinstance(s, (str, int)):
                raise errors.InvalidRequestError(f"stop entries must be strings or token ids, got {s!r}")
            if isinstance(s, int):
                check_tokens([s], vocab_size, what="stop")
            elif s == "":
                raise errors.InvalidRequestError("stop strings must be non-empty")
    room = max_context - len(tokens)
    max_tokens = room if params.max_tokens is None else params.max_tokens
    if params.max_tokens is not None and params.max_tokens < 1:
        raise errors.InvalidRequestError(f"max_tokens must be >= 1, got {params.max_tokens}")
    if max_tokens > room or room < 1:
        raise errors.ContextLengthExceededError(
            f"prompt ({len(tokens)} tokens) + max_tokens ({max_tokens}) exceeds the model's context of {max_context}")
    return tokens, max_tokens
