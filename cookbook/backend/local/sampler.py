"""Batched sampling: one prefill over all rows, then token-by-token decoding with a KV cache.

Concurrent ``sample`` requests (possibly on different adapters, or on the base model) are
coalesced by the engine into one call of :func:`sample_batch`: prompts are left-padded, each
request's ``num_samples`` rows share its random generator, and each row stops on its own.

Reported logprobs are ``log_softmax(logits / temperature)`` of the sampled token (temperature 0
reports the untempered distribution), before top-k / top-p truncation: at temperature 1 they are
exactly what ``forward`` computes for the same tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tinker import types

from .futures import LocalFuture
from .lora import Adapter, use_adapters
from .model import BaseModel


@dataclass
class SampleJob:
    prompt: list[int]
    num_samples: int
    params: types.SamplingParams
    max_tokens: int
    adapter: Adapter | None
    future: LocalFuture
    include_prompt_logprobs: bool = False
    topk_prompt_logprobs: int = 0
    generator: torch.Generator | None = None
    # filled in by _prepare
    stop_ids: set[int] = field(default_factory=set)
    stop_strings: list[str] = field(default_factory=list)


def _stops(job: SampleJob, model: BaseModel) -> None:
    stop = job.params.stop
    if stop is None:
        job.stop_ids = set(model.eos_token_ids)
    elif isinstance(stop, str):
        job.stop_strings = [stop]
    else:
        job.stop_ids = {s for s in stop if isinstance(s, int)}
        job.stop_strings = [s for s in stop if isinstance(s, str)]


def _filter_top_k_top_p(logprobs: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to -inf) tokens outside the top-k and outside the top-p nucleus, row-wise."""
    if top_k > 0 and top_k < logprobs.shape[-1]:
        kth = torch.topk(logprobs, top_k, dim=-1).values[..., -1:]
        logprobs = logprobs.masked_fill(logprobs < kth, float("-inf"))
    if top_p < 1.0:
        sorted_lp, order = torch.sort(logprobs, dim=-1, descending=True)
        cum = torch.cumsum(sorted_lp.exp(), dim=-1)
        remove_sorted = (cum - sorted_lp.exp()) >= top_p  # keep the token that crosses top_p
        remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
        logprobs = logprobs.masked_fill(remove, float("-inf"))
    return logprobs


def _prompt_outputs(model: BaseModel, job: SampleJob, hidden: torch.Tensor) -> dict:
    """Prompt logprobs / top-k for one job from its prefill hidden states [L, H]."""
    out: dict = {}
    prompt = torch.as_tensor(job.prompt, device=hidden.device)
    with use_adapters(job.adapter):
        if job.include_prompt_logprobs:
            lp = model.token_logprobs(hidden[:-1], prompt[1:]).cpu().numpy()
            out["prompt_logprobs_np"] = np.concatenate([[np.nan], lp]).astype(np.float32)
        if job.topk_prompt_logprobs:
            full = model.full_logprobs(hidden[:-1])
            k = min(job.topk_prompt_logprobs, full.shape[-1])
            vals, ids = torch.topk(full, k, dim=-1)
            ids_np = np.zeros((len(job.prompt), k), dtype=np.int32)
            vals_np = np.full((len(job.prompt), k), -99999.0, dtype=np.float32)
            ids_np[1:], vals_np[1:] = ids.cpu().numpy(), vals.cpu().numpy()
            out["_topk_prompt_logprobs_list"] = [None] + [
                list(zip(r_ids.tolist(), r_vals.tolist())) for r_ids, r_vals in zip(ids_np[1:], vals_np[1:])]
    return out


@torch.no_grad()
def sample_batch(model: BaseModel, jobs: Sequence[SampleJob]) -> list[types.SampleResponse]:
    device = model.device
    for job in jobs:
        _stops(job, model)
    rows = [j for j in jobs for _ in range(j.num_samples)]
    job_rows: list[slice] = []
    start = 0
    for job in jobs:
        job_rows.append(slice(start, start + job.num_samples))
        start += job.num_samples
    n_rows = len(rows)
    width = max(len(j.prompt) for j in jobs)

    ids = torch.zeros(n_rows, width, dtype=torch.long)
    mask = torch.zeros(n_rows, width, dtype=torch.long)
    for r, job in enumerate(rows):
        n = len(job.prompt)
        ids[r, width - n :] = torch.as_tensor(job.prompt)
        mask[r, width - n :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    row_adapters = [job.adapter for job in rows]

    with use_adapters(row_adapters):
        out = model.body(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        cache = out.past_key_values
        hidden = out.last_hidden_state
        logits = model.lm_head(hidden[:, -1]).float()

    extras = []
    for job, rs in zip(jobs, job_rows):
        need = job.include_prompt_logprobs or job.topk_prompt_logprobs
        extras.append(_prompt_outputs(model, job, hidden[rs.start, width - len(job.prompt) :]) if need else {})
    del hidden, out

    max_steps = max(j.max_tokens for j in jobs)
    temps = torch.tensor([j.params.temperature for j in rows], device=device, dtype=torch.float32)
    greedy = temps == 0
    temps = torch.where(greedy, torch.ones_like(temps), temps)[:, None]

    generated = torch.zeros(n_rows, max_steps, dtype=torch.long)
    gen_logprobs = torch.zeros(n_rows, max_steps, dtype=torch.float32)
    lengths = np.zeros(n_rows, dtype=np.int64)
    done = np.zeros(n_rows, dtype=bool)
    stop_reason = ["length"] * n_rows
    next_pos = positions[:, -1:] + 1

    for step in range(max_steps):
        logprobs = torch.log_softmax(logits / temps, dim=-1)
        choice = torch.empty(n_rows, dtype=torch.long, device=device)
        for job, rs in zip(jobs, job_rows):
            lp = logprobs[rs]
            if job.params.temperature == 0:
                choice[rs] = lp.argmax(-1)
                continue
            filtered = _filter_top_k_top_p(lp, job.params.top_k, job.params.top_p)
            noise = torch.empty(lp.shape, device=device, dtype=torch.float32).exponential_(generator=job.generator)
            choice[rs] = (filtered - noise.log()).argmax(-1)  # exponential race == categorical draw
        chosen_lp = logprobs.gather(-1, choice[:, None])[:, 0]
        choice_cpu, chosen_lp_cpu = choice.cpu(), chosen_lp.cpu()

        for r in np.flatnonzero(~done):
            job = rows[r]
            tok = int(choice_cpu[r])
            generated[r, lengths[r]] = tok
            gen_logprobs[r, lengths[r]] = chosen_lp_cpu[r]
            lengths[r] += 1
            if tok in job.stop_ids or (job.stop_strings and _ends_with_stop(model, generated[r, : lengths[r]], job)):
                done[r], stop_reason[r] = True, "stop"
            elif lengths[r] >= job.max_tokens:
                done[r] = True
        if done.all():
            break
        mask = torch.cat([mask, torch.ones(n_rows, 1, dtype=mask.dtype, device=device)], dim=1)
        with use_adapters(row_adapters):
            out = model.body(input_ids=choice[:, None], attention_mask=mask, position_ids=next_pos,
                             past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = model.lm_head(out.last_hidden_state[:, -1]).float()
        next_pos = next_pos + 1

    responses = []
    for job, rs, extra in zip(jobs, job_rows, extras):
        seqs = [
            types.SampledSequence(
                stop_reason=stop_reason[r],
                sequence_id=uuid.uuid4().hex,
                tokens_np=generated[r, : lengths[r]].numpy().astype(np.int32),
                logprobs_np=gen_logprobs[r, : lengths[r]].numpy().astype(np.float32),
            )
            for r in range(rs.start, rs.stop)
        ]
        responses.append(types.SampleResponse(sequences=seqs, **extra))
    return responses


def _ends_with_stop(model: BaseModel, tokens: torch.Tensor, job: SampleJob) -> bool:
    """True when the text of the generated tokens now contains a stop string.

    Only the last few tokens are decoded: a stop string of L characters spans at most L tokens
    (plus a little slack for tokens that decode to partial UTF-8).
    """
    longest = max(len(s) for s in job.stop_strings)
    tail = tokens[-(longest + 2):].tolist()
    text = model.tokenizer.decode(tail, skip_special_tokens=False)
    return any(s in text for s in job.stop_strings)
