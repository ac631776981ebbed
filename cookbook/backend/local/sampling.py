"""The local sampling client: ``sample`` and ``compute_logprobs`` on a base model with a frozen adapter
snapshot (or none), with every option of ``tinker`` 0.38's ``SamplingClient.sample``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tinker import types

from . import errors, validation
from .futures import LocalFuture
from .lora import Adapter
from .model import BaseModel
from .sampler import SampleJob

if TYPE_CHECKING:
    from .clients import ServiceClient


class ReadyClient:
    """Lets ``factory(...).result()`` and ``await factory(...)`` work as with the SDK's client futures."""

    def result(self, timeout: float | None = None):
        return self

    def __await__(self):
        async def _self():
            return self
        return _self().__await__()


class SamplingClient(ReadyClient):
    """Samples from the base model with a frozen adapter snapshot (or none: the base model).

    With ``record_stability_info`` every sampled sequence is recorded in the session's stability
    store under its ``sequence_id`` (``stable_reinforce`` reads it; see ``stability.py``).
    """

    def __init__(self, service: ServiceClient, base: BaseModel, adapter: Adapter | None, *, sampler_id: str,
                 model_path: str | None = None, record_stability_info: bool = False) -> None:
        self.service, self.base, self.adapter = service, base, adapter
        self.sampler_id, self.model_path = sampler_id, model_path
        self.record_stability_info = bool(record_stability_info)
        self._engine = service.engine
        self._seed_source = np.random.default_rng()

    def get_tokenizer(self):
        return self.base.tokenizer

    def get_base_model(self) -> str:
        return self.base.name

    def sample(self, prompt: types.ModelInput, num_samples: int, sampling_params: types.SamplingParams,
               include_prompt_logprobs: bool = False, topk_prompt_logprobs: int = 0, topk_sample_logprobs: int = 0,
               target_prompt_logprobs: types.TensorData | None = None, prompt_alt_tokens_k: int = 0,
               prompt_logprobs_last_n: int | None = None, *, sequence_ids: list[str] | None = None,
               record_stability_info: bool | None = None) -> LocalFuture[types.SampleResponse]:
        """``tinker.SamplingClient.sample``. ``sequence_ids`` (one per sample) names the sequences instead
        of fresh ids, and ``record_stability_info`` overrides the client's setting for this request (the
        Tinker server passes what the SDK's request says)."""
        tokens, max_tokens = validation.sampling_request(
            prompt, num_samples, sampling_params, vocab_size=self.base.vocab_size,
            max_context=self.base.max_context, topk_sample_logprobs=topk_sample_logprobs)
        prompt_request = validation.prompt_request(
            tokens, self.base.vocab_size, include_prompt_logprobs=include_prompt_logprobs,
            topk_prompt_logprobs=topk_prompt_logprobs, target_prompt_logprobs=target_prompt_logprobs,
            prompt_alt_tokens_k=prompt_alt_tokens_k, prompt_logprobs_last_n=prompt_logprobs_last_n)
        if sequence_ids is not None and len(sequence_ids) != num_samples:
            raise errors.InvalidRequestError(
                f"sequence_ids has {len(sequence_ids)} ids for {num_samples} samples")
        generator = torch.Generator(device=self.base.device)
        seed = sampling_params.seed
        generator.manual_seed(int(seed) if seed is not None else int(self._seed_source.integers(2**62)))
        job = SampleJob(tokens, num_samples, sampling_params, max_tokens, self.adapter, LocalFuture(),
                        prompt_request=prompt_request, topk_sample_logprobs=topk_sample_logprobs,
                        generator=generator, sequence_ids=list(sequence_ids) if sequence_ids else None,
                        record=self.service.stability if (self.record_stability_info if record_stability_info is None
                                                          else record_stability_info) else None)
        return self._engine.submit_sample(self.base, job)

    def compute_logprobs(self, prompt: types.ModelInput,
                         prompt_logprobs_last_n: int | None = None) -> LocalFuture[list[float | None]]:
        """Log-probabilities of each prompt token given the ones before it (``None`` first, and before the
        last ``prompt_logprobs_last_n`` tokens when given)."""
        inner = self.sample(prompt, 1, types.SamplingParams(max_tokens=1), include_prompt_logprobs=True,
                            prompt_logprobs_last_n=prompt_logprobs_last_n)
        outer: LocalFuture[list[float | None]] = LocalFuture()

        def done(f: Any) -> None:
            if f.exception() is not None:
                outer._fail(f.exception())
            else:
                outer._set(f.result().prompt_logprobs)
        inner.future().add_done_callback(done)
        return outer
