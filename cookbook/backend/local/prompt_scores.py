"""What a sample request asks about its prompt, computed from the prefill's hidden states.

Row ``i`` of the prefill's hidden states predicts prompt token ``i + 1`` (position 0 has no
context). Per request (:class:`PromptRequest`):

- ``include_logprobs``: ``log p(prompt[i])`` at every position (NaN at 0), or only at the last
  ``last_n`` positions (NaN before them, and nothing is computed there);
- ``topk``: the ``topk`` most likely tokens at the same positions (sentinel rows elsewhere);
- ``target_ids``: an int64 ``[len(prompt) - 1, K]`` tensor of token ids to score (``-1``: none),
  dense or sparse CSR; the answer has the same layout with each id's log-probability (0.0 for
  ``-1``); rows naming no id are not computed;
- ``alt_k``: ``k`` draws with replacement per position from ``log_softmax(logits / temperature)``
  (greedy at temperature 0), with their log-probabilities under that distribution; drawn from a
  generator derived from the request's seed, so asking for them does not change the sampled tokens.

All but the draws are untempered log-probabilities, the ones ``forward`` computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tinker import types
from tinker.types.topk_logprobs import TopkLogprobs

from .lora import Adapter, use_adapters
from .model import BaseModel, logits_chunk

_TOPK_PAD = (0, -99999.0)  # the SDK's TopkLogprobs sentinel cell
_ALT_SEED_OFFSET = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class PromptRequest:
    include_logprobs: bool = False
    topk: int = 0
    last_n: int | None = None
    target: types.TensorData | None = None  # as the client sent it (its layout is the answer's)
    alt_k: int = 0

    def any(self) -> bool:
        return self.include_logprobs or self.topk > 0 or self.target is not None or self.alt_k > 0


def target_ids(target: types.TensorData) -> np.ndarray:
    """The dense int64 [rows, K] ids of a ``target_prompt_logprobs`` tensor (-1 where none)."""
    return np.asarray(target.to_numpy(pad_value=-1), dtype=np.int64)


@torch.inference_mode()
def prompt_outputs(model: BaseModel, prompt: list[int], adapter: Adapter | None, request: PromptRequest,
                   temperature: float, generator: torch.Generator | None, hidden: torch.Tensor) -> dict[str, Any]:
    """The ``SampleResponse`` fields ``request`` asks for, from the prompt's hidden states [L, H]."""
    out: dict[str, Any] = {}
    length = len(prompt)
    first = 1 if request.last_n is None else length - request.last_n  # first scored position
    prompt_t = torch.as_tensor(prompt, device=hidden.device)
    with use_adapters(adapter):
        if request.include_logprobs:
            values = np.full(length, np.nan, dtype=np.float32)
            if first < length:
                values[first:] = model.token_logprobs(hidden[first - 1:-1], prompt_t[first:]).cpu().numpy()
            out["prompt_logprobs_np"] = values
        if request.topk:
            k = min(request.topk, model.vocab_size)
            ids = np.full((length, k), _TOPK_PAD[0], dtype=np.int32)
            lps = np.full((length, k), _TOPK_PAD[1], dtype=np.float32)
            if first < length:
                top_values, top_ids = model.topk_logprobs(hidden[first - 1:-1], k)
                ids[first:], lps[first:] = top_ids.cpu().numpy(), top_values.cpu().numpy()
            out["topk_prompt_logprobs_np"] = TopkLogprobs(token_ids=ids, logprobs=lps)
        if request.target is not None:
            out["target_prompt_logprobs"] = _target_logprobs(model, hidden[:-1], request.target)
        if request.alt_k:
            out["prompt_alt_tokens"] = _alt_tokens(model, hidden[:-1], request.alt_k, temperature, generator)
    return out


def _target_logprobs(model: BaseModel, hidden: torch.Tensor, target: types.TensorData) -> types.TensorData:
    ids = target_ids(target)
    scores = np.zeros(ids.shape, dtype=np.float32)
    rows = np.flatnonzero((ids >= 0).any(axis=1))
    chunk = logits_chunk(model.vocab_size)
    for s in range(0, len(rows), chunk):
        part = rows[s:s + chunk]
        lp = torch.log_softmax(model.lm_head(hidden[torch.as_tensor(part, device=hidden.device)]).float(), -1)
        wanted = torch.as_tensor(ids[part], device=lp.device)
        scores[part] = torch.where(wanted >= 0, lp.gather(-1, wanted.clamp(min=0)), 0.0).cpu().numpy()
    if target.sparse_crow_indices is None:
        return types.TensorData.from_numpy(scores)
    crow = np.asarray(target.sparse_crow_indices, dtype=np.int64)
    col = np.asarray(target.sparse_col_indices, dtype=np.int64)
    row_of = np.repeat(np.arange(len(crow) - 1), np.diff(crow))
    return types.TensorData(data=scores[row_of, col], dtype="float32", shape=list(ids.shape),
                            sparse_crow_indices=crow.tolist(), sparse_col_indices=col.tolist())


def _alt_tokens(model: BaseModel, hidden: torch.Tensor, k: int, temperature: float,
                generator: torch.Generator | None) -> types.PromptAltTokens:
    draws = torch.Generator(device=hidden.device)
    base_seed = generator.initial_seed() if generator is not None else int(torch.randint(2**62, ()).item())
    draws.manual_seed((base_seed + _ALT_SEED_OFFSET) % 2**64)
    tokens = np.zeros((hidden.shape[0], k), dtype=np.int64)
    logprobs = np.zeros((hidden.shape[0], k), dtype=np.float32)
    chunk = logits_chunk(model.vocab_size)
    for s in range(0, hidden.shape[0], chunk):
        logits = model.lm_head(hidden[s:s + chunk]).float()
        if temperature == 0:
            lp = torch.log_softmax(logits, -1)
            chosen = lp.argmax(-1, keepdim=True).expand(-1, k)
        else:
            lp = torch.log_softmax(logits / temperature, -1)
            chosen = torch.multinomial(lp.exp(), k, replacement=True, generator=draws)
        tokens[s:s + chunk] = chosen.cpu().numpy()
        logprobs[s:s + chunk] = lp.gather(-1, chosen).cpu().numpy()
    return types.PromptAltTokens(tokens=types.TensorData.from_numpy(tokens),
                                 logprobs=types.TensorData.from_numpy(logprobs))
