"""Batched sampling: one prefill over all rows, then token-by-token decoding with a KV cache.

Concurrent ``sample`` requests (possibly on different adapters, or on the base model) are
coalesced by the engine into one call of :func:`sample_batch`: each distinct (adapter, prompt) is
prefilled once (left-padded) and its KV cache copied to every row that samples from it; each
request's rows draw from its own random generator (so a seed reproduces a request whatever it is
batched with), and each row stops on its own. Once a quarter of the batch has finished, the
finished rows leave it (KV cache included), so uneven lengths do not keep computing dead rows.

Where the model has a static decoder (``static_decode``: Llama-family models on CUDA), the rows
decode through it: fixed buffers per batch-size bucket, LoRA from a slot pool, the step captured
as a CUDA graph; it leaves finished rows by moving to a smaller bucket. Otherwise (and when its
pool or the free memory cannot take a batch) they decode eagerly (:class:`_EagerDecoding`). Both
are a :class:`Decoding` driven by the same loop (:func:`_decode`): token choice, stop checks and
results do not depend on the path. :func:`sample_batch` is layout (:class:`_Layout`), prefill
(:func:`_prefill`), decode, responses.

Reported logprobs are ``log_softmax(logits / temperature)`` of the sampled token (temperature 0
reports the untempered distribution), before top-k / top-p truncation: at temperature 1 they are
exactly what ``forward`` computes for the same tokens. ``topk_sample_logprobs`` reports the top
tokens of that same distribution at each sampled position.

The prompt-side outputs come from the prefill (``prompt_scores``): prompt logprobs and their top-k
(for the last ``prompt_logprobs_last_n`` positions only, when given), ``target_prompt_logprobs``
and ``prompt_alt_tokens``. A request with a stability store records each sequence there
(``stability.py``), under the sequence ids it was given (the Tinker server's) or fresh ones.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
from tinker import types
from tinker.types.topk_logprobs import TopkLogprobs

from .futures import LocalFuture
from .kv_cache import preallocated_cache
from .lora import Adapter, use_adapters
from .model import BaseModel
from .prompt_scores import PromptRequest, prompt_outputs
from .stability import StabilityRecord, StabilityStore

KV_PREALLOCATE_MAX = 1024  # new-token positions reserved up front; the cache doubles beyond that
# Once at least this fraction of the rows in the decode batch have finished, they are dropped
# from it (KV cache included): later steps compute only the rows still generating.
COMPACT_FINISHED_FRACTION = 0.25


@dataclass
class SampleJob:
    prompt: list[int]
    num_samples: int
    params: types.SamplingParams
    max_tokens: int
    adapter: Adapter | None
    future: LocalFuture
    prompt_request: PromptRequest = field(default_factory=PromptRequest)
    topk_sample_logprobs: int = 0
    generator: torch.Generator | None = None
    sequence_ids: list[str] | None = None  # one per sample (None: fresh ids)
    record: StabilityStore | None = None  # keep each sequence's stability record here
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


class _TokenChooser:
    """Chooses one token per live row (``live``: the batch rows' indices among all rows): argmax
    for temperature 0, else an inverse-CDF draw from the (top-k / top-p filtered) distribution.

    Every sampling request draws one uniform number per sample from its own generator at every
    step while any of its rows is live, whether or not its finished rows are still in the batch,
    so a seed gives the same tokens whatever the request is batched with. Per-row facts are
    tabulated once, so a step costs a few vectorised operations plus one draw per request.
    """

    def __init__(self, jobs: Sequence[SampleJob], job_rows: Sequence[slice]) -> None:
        self.jobs, self.job_rows = jobs, job_rows
        self.row_job = np.repeat(np.arange(len(jobs)), [j.num_samples for j in jobs])
        self.row_sampled = np.array([jobs[k].params.temperature != 0 for k in self.row_job.tolist()])
        self.row_filter = [(jobs[k].params.top_k, jobs[k].params.top_p) for k in self.row_job.tolist()]
        # the log of the probability mass top-k / top-p kept, per live row, after each call (when asked)
        self.track_mass = any(j.record is not None for j in jobs)
        self.log_mass: torch.Tensor | None = None

    def __call__(self, logprobs: torch.Tensor, live: np.ndarray) -> torch.Tensor:
        choice = logprobs.argmax(-1)
        sampled = np.flatnonzero(self.row_sampled[live])  # positions in the batch
        if self.track_mass:  # greedy rows: the chosen token's own logprob (it was certain: behaviour logprob 0)
            self.log_mass = logprobs.gather(-1, choice[:, None])[:, 0].clone()
        if len(sampled) == 0:
            return choice
        device = logprobs.device
        idx = torch.as_tensor(sampled, device=device)
        lp = logprobs.index_select(0, idx)
        settings = [self.row_filter[r] for r in live[sampled]]
        for top_k, top_p in set(settings) - {(-1, 1.0)}:
            members = torch.tensor([j for j, key in enumerate(settings) if key == (top_k, top_p)], device=device)
            lp[members] = _filter_top_k_top_p(lp[members], top_k, top_p)
        if self.log_mass is not None:
            self.log_mass[idx] = torch.logsumexp(lp, dim=-1)
        cdf = torch.cumsum(lp.exp(), dim=-1)

        rows = live[sampled]
        uniforms = torch.empty(len(self.row_job), device=device)  # one per row of every request
        for k in np.unique(self.row_job[rows]).tolist():  # requests with a live sampled row
            rs = self.job_rows[k]
            uniforms[rs] = 1.0 - torch.rand(rs.stop - rs.start, generator=self.jobs[k].generator, device=device)
        u = uniforms[torch.as_tensor(rows, device=device)]
        draw = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None].contiguous())[:, 0]
        choice[idx] = draw.clamp_(max=logprobs.shape[-1] - 1)
        return choice


class _EagerDecoding:
    """Decoding through the prefill's growing cache (``kv_cache``) with the adapters routed per row
    (``use_adapters``): :class:`decode_step.DecodeStep` where the architecture has one, else the
    model's forward. Finished rows leave the batch (:meth:`keep`), KV cache included."""

    def __init__(self, model: BaseModel, cache, mask: torch.Tensor, positions: torch.Tensor, width: int,
                 padded: bool, row_adapters: list[Adapter | None]) -> None:
        self.model, self.cache, self.mask, self.width, self.padded = model, cache, mask, width, padded
        self.row_adapters = row_adapters
        self.next_pos = positions[:, -1:] + 1
        self.attn_mask: torch.Tensor | None = None
        if model.decode_step is not None and padded:
            self.attn_mask = mask.bool()[:, None, None, :]  # prompt padding masked, generated positions valid
            self.attn_mask[..., width:] = True
        self.steps = 0
        self._routing = contextlib.ExitStack()  # one routing for all steps until the rows change
        self._routing.enter_context(use_adapters(row_adapters))

    def step(self, choice: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; returns the next logits [rows, vocab] in fp32."""
        model, end = self.model, self.width + self.steps + 1
        if model.decode_step is not None:
            hidden = model.decode_step(choice, self.next_pos, self.cache,
                                       None if self.attn_mask is None else self.attn_mask[..., :end])
        else:
            self.mask[:, end - 1] = 1
            hidden, self.cache = model.body_with_cache(
                self.cache, input_ids=choice[:, None], attention_mask=self.mask[:, :end] if self.padded else None,
                position_ids=self.next_pos)
            hidden = hidden[:, -1]
        self.next_pos = self.next_pos + 1
        self.steps += 1
        return model.lm_head(hidden).float()

    def keep(self, keep: np.ndarray) -> bool:
        """Keep only rows ``keep`` (positions among the current rows)."""
        sel = torch.as_tensor(keep, device=self.model.device)
        self.cache.batch_select_indices(sel)
        self.next_pos, self.mask = self.next_pos[sel], self.mask[sel]
        if self.attn_mask is not None:
            self.attn_mask = self.attn_mask[sel]
        self.row_adapters = [self.row_adapters[i] for i in keep]
        self._routing.close()
        self._routing.enter_context(use_adapters(self.row_adapters))
        return True

    def close(self) -> None:
        self._routing.close()


class Decoding(Protocol):
    """A decoding path, as the decode loop (:func:`_decode`) drives it: :class:`_EagerDecoding`, or
    ``static_decode.StaticDecoding`` on the static path. Token choice, stop checks and results stay
    in the loop, so they do not depend on the path."""

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row ([rows]); the next logits [rows, vocab] in fp32."""
        ...

    def keep(self, keep: np.ndarray) -> bool:
        """Keep only rows ``keep`` (positions among the current rows); False when it cannot (nothing changes)."""
        ...

    def close(self) -> None: ...


@dataclass
class _Layout:
    """The rows of one batch: each request's rows, and the distinct (adapter, prompt) prefills they copy."""

    jobs: Sequence[SampleJob]
    rows: list[SampleJob]  # one per sample
    job_rows: list[slice]  # each request's rows
    prefill_jobs: list[SampleJob]  # the first request of each distinct (adapter, prompt)
    job_prefill: list[int]  # each request's prefill
    width: int  # the longest prompt
    max_steps: int

    @classmethod
    def of(cls, jobs: Sequence[SampleJob]) -> _Layout:
        starts = np.cumsum([0] + [j.num_samples for j in jobs]).tolist()
        unique: dict[tuple[int, tuple[int, ...]], int] = {}
        prefill_jobs: list[SampleJob] = []
        for job in jobs:
            key = (id(job.adapter), tuple(job.prompt))
            if key not in unique:
                unique[key] = len(prefill_jobs)
                prefill_jobs.append(job)
        return cls(jobs, [j for j in jobs for _ in range(j.num_samples)],
                   [slice(a, b) for a, b in zip(starts, starts[1:])], prefill_jobs,
                   [unique[(id(j.adapter), tuple(j.prompt))] for j in jobs],
                   max(len(j.prompt) for j in jobs), max(j.max_tokens for j in jobs))

    def row_prefill(self) -> torch.Tensor:
        """Each row's prefill index."""
        return torch.tensor([self.job_prefill[k] for k, j in enumerate(self.jobs) for _ in range(j.num_samples)])


@dataclass
class _Prefill:
    logits: torch.Tensor  # [rows, vocab] fp32: each row's first logits
    extras: list[dict]  # each request's prompt logprobs / top-k
    decoding: Decoding


@dataclass
class _Generated:
    """What the decode loop wrote: each row's tokens and logprobs, how many, and why it stopped."""

    tokens: torch.Tensor  # [rows, max_steps]
    logprobs: torch.Tensor
    lengths: np.ndarray
    done: np.ndarray
    stop_reason: list[Literal["length", "stop"]]
    log_mass: torch.Tensor | None = None  # [rows, max_steps]: what top-k / top-p kept (stability records)
    topk_ids: torch.Tensor | None = None  # [rows, max_steps, k]: topk_sample_logprobs
    topk_logprobs: torch.Tensor | None = None

    @classmethod
    def empty(cls, rows: int, steps: int, *, log_mass: bool = False, topk: int = 0) -> _Generated:
        out = cls(torch.zeros(rows, steps, dtype=torch.long), torch.zeros(rows, steps, dtype=torch.float32),
                  np.zeros(rows, dtype=np.int64), np.zeros(rows, dtype=bool), ["length"] * rows)
        if log_mass:
            out.log_mass = torch.zeros(rows, steps, dtype=torch.float32)
        if topk:
            out.topk_ids = torch.zeros(rows, steps, topk, dtype=torch.long)
            out.topk_logprobs = torch.zeros(rows, steps, topk, dtype=torch.float32)
        return out


@torch.inference_mode()
def sample_batch(model: BaseModel, jobs: Sequence[SampleJob]) -> list[types.SampleResponse]:
    """Every request's samples: one prefill per distinct prompt, then all rows decoded together."""
    for job in jobs:
        _stops(job, model)
    layout = _Layout.of(jobs)
    prefill = _prefill(model, layout)
    with contextlib.closing(prefill.decoding):
        generated = _decode(model, layout, prefill.logits, prefill.decoding)
    responses = []
    for job, rows, extra in zip(jobs, layout.job_rows, prefill.extras):
        ids = job.sequence_ids or [uuid.uuid4().hex for _ in range(job.num_samples)]
        sequences = [_sequence(generated, r, sid, job.topk_sample_logprobs)
                     for r, sid in zip(range(rows.start, rows.stop), ids)]
        if job.record is not None:
            _record(job, generated, rows, ids)
        responses.append(types.SampleResponse(sequences=sequences, **extra))
    return responses


def _record(job: SampleJob, out: _Generated, rows: slice, ids: Sequence[str]) -> None:
    assert job.record is not None and out.log_mass is not None
    prompt = np.asarray(job.prompt, dtype=np.int64)
    for r, sid in zip(range(rows.start, rows.stop), ids):
        n = int(out.lengths[r])
        behaviour = (out.logprobs[r, :n] - out.log_mass[r, :n]).numpy().astype(np.float32)
        job.record.add(sid, StabilityRecord(prompt, out.tokens[r, :n].numpy().astype(np.int64), behaviour))


def _prefill(model: BaseModel, layout: _Layout) -> _Prefill:
    """One forward over the distinct prompts, left-padded; every row's first logits and its decoding path
    (the static one when the model has it and it takes the batch; the prefill's cache copied per row)."""
    device, width, max_steps = model.device, layout.width, layout.max_steps
    row_adapters = [job.adapter for job in layout.rows]
    static = None if model.static_decoder is None else model.static_decoder.begin(row_adapters, width + max_steps)
    ids = torch.zeros(len(layout.prefill_jobs), width, dtype=torch.long)
    mask = torch.zeros(len(layout.prefill_jobs), width + max_steps, dtype=torch.long)
    for u, job in enumerate(layout.prefill_jobs):
        n = len(job.prompt)
        ids[u, width - n :] = torch.as_tensor(job.prompt)
        mask[u, width - n : width] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask[:, :width].cumsum(-1) - 1).clamp(min=0)
    padded = any(len(j.prompt) != width for j in layout.prefill_jobs)  # without padding, plain causal attention
    room = 0 if static is not None else min(max_steps, KV_PREALLOCATE_MAX)  # the static decoder has its own cache
    with use_adapters([job.adapter for job in layout.prefill_jobs]):
        hidden, cache = model.body_with_cache(preallocated_cache(width + room), input_ids=ids, position_ids=positions,
                                              attention_mask=mask[:, :width] if padded else None)
        logits = model.lm_head(hidden[:, -1]).float()
    extras = [prompt_outputs(model, job.prompt, job.adapter, job.prompt_request, job.params.temperature, job.generator,
                             hidden[u, width - len(job.prompt) :])
              if job.prompt_request.any() else {}
              for job, u in zip(layout.jobs, layout.job_prefill)]
    del hidden
    expand = layout.row_prefill().to(device)
    copies = len(layout.prefill_jobs) != len(layout.rows)
    if copies:
        logits = logits[expand]
    if static is not None:
        layers: list[Any] = list(cache.layers)  # the prefill's full-attention layers: keys and values
        static.load_prefill([(layer.keys, layer.values) for layer in layers], expand,
                            [len(j.prompt) for j in layout.rows])
        return _Prefill(logits, extras, static)
    if copies:
        cache.batch_select_indices(expand)
        mask, positions = mask[expand], positions[expand]
    return _Prefill(logits, extras, _EagerDecoding(model, cache, mask, positions, width, padded, row_adapters))


def _decode(model: BaseModel, layout: _Layout, logits: torch.Tensor, decoding: Decoding) -> _Generated:
    """Token by token until every row has stopped: choose each row's token, record it, check its stops;
    once enough rows have finished, they leave the batch (when the decoding path can drop them)."""
    rows, device = layout.rows, model.device
    temps = torch.tensor([j.params.temperature for j in rows], device=device, dtype=torch.float32)
    temps = torch.where(temps == 0, torch.ones_like(temps), temps)[:, None]
    topk = max(j.topk_sample_logprobs for j in layout.jobs)
    out = _Generated.empty(len(rows), layout.max_steps, log_mass=any(j.record is not None for j in layout.jobs),
                           topk=min(topk, model.vocab_size))
    has_stops = np.array([bool(j.stop_ids or j.stop_strings) for j in rows])
    row_max_tokens = np.array([j.max_tokens for j in rows])
    choose_tokens = _TokenChooser(layout.jobs, layout.job_rows)
    live = np.arange(len(rows))  # the batch's rows, as indices among all rows
    for step in range(layout.max_steps):
        logprobs = torch.log_softmax(logits / temps, dim=-1)
        choice = choose_tokens(logprobs, live)
        chosen_lp = logprobs.gather(-1, choice[:, None])[:, 0]
        out.tokens[live, step], out.logprobs[live, step] = choice.cpu(), chosen_lp.cpu()
        if out.log_mass is not None and choose_tokens.log_mass is not None:
            out.log_mass[live, step] = choose_tokens.log_mass.cpu()
        if out.topk_ids is not None and out.topk_logprobs is not None:
            top = torch.topk(logprobs, out.topk_ids.shape[-1], dim=-1)
            out.topk_ids[live, step], out.topk_logprobs[live, step] = top.indices.cpu(), top.values.cpu()
        active = live[~out.done[live]]
        out.lengths[active] += 1
        for r in active[has_stops[active]]:
            if _stopped(model, rows[r], out.tokens[r, : out.lengths[r]], int(out.tokens[r, step])):
                out.done[r], out.stop_reason[r] = True, "stop"
        out.done |= out.lengths >= row_max_tokens
        if out.done.all():
            break
        keep = np.flatnonzero(~out.done[live])
        if len(live) - len(keep) >= COMPACT_FINISHED_FRACTION * len(live) and decoding.keep(keep):
            live = live[keep]
            sel = torch.as_tensor(keep, device=device)
            choice, temps = choice[sel], temps[sel]
        logits = decoding.step(choice)
    return out


def _sequence(out: _Generated, row: int, sequence_id: str, topk: int) -> types.SampledSequence:
    n = out.lengths[row]
    topk_np = None
    if topk and out.topk_ids is not None and out.topk_logprobs is not None:
        k = min(topk, out.topk_ids.shape[-1])
        topk_np = TopkLogprobs(token_ids=out.topk_ids[row, :n, :k].numpy().astype(np.int32),
                                     logprobs=out.topk_logprobs[row, :n, :k].numpy().astype(np.float32))
    return types.SampledSequence(stop_reason=out.stop_reason[row], sequence_id=sequence_id,
                                 tokens_np=out.tokens[row, :n].numpy().astype(np.int32),
                                 logprobs_np=out.logprobs[row, :n].numpy().astype(np.float32),
                                 topk_logprobs_np=topk_np)


def _stopped(model: BaseModel, job: SampleJob, tokens: torch.Tensor, last: int) -> bool:
    """The row's ``last`` token is a stop token, or its text (``tokens``) now holds a stop string."""
    return last in job.stop_ids or bool(job.stop_strings and _ends_with_stop(model, tokens, job))


def _ends_with_stop(model: BaseModel, tokens: torch.Tensor, job: SampleJob) -> bool:
    """True when the text of the generated tokens now contains a stop string.

    Only the last few tokens are decoded: a stop string of L characters spans at most L tokens
    (plus a little slack for tokens that decode to partial UTF-8).
    """
    longest = max(len(s) for s in job.stop_strings)
    tail = tokens[-(longest + 2):].tolist()
    text = model.tokenizer.decode(tail, skip_special_tokens=False)
    return any(s in text for s in job.stop_strings)
