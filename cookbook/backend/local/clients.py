"""Service, training and sampling clients mirroring ``tinker`` 0.38, running in-process.

Client factories return the client itself; like the SDK's client futures, a client also has
``.result()`` and is awaitable (both give the client back), so code written in either style runs.
Every request method validates its input at once (raising a typed error from ``errors`` and
leaving all state untouched) and returns a :class:`LocalFuture`.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tinker import types

from . import checkpoints, errors, validation
from .engine import Engine, default_engine
from .futures import LocalFuture
from .lora import Adapter, LoraSpec, max_rank, new_adapter, training_bytes, use_adapters
from .losses import resolve_config
from .memory import MicroBatch, micro_batches, overhead_tokens, plan
from .model import BaseModel
from .sampler import SampleJob

CustomLossFn = Callable[[list[types.Datum], list[torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]


logger = logging.getLogger(__name__)

class _ReadyClient:
    """Lets ``factory(...).result()`` and ``await factory(...)`` work as with the SDK."""

    def result(self, timeout: float | None = None):
        return self

    def __await__(self):
        async def _self():
            return self
        return _self().__await__()


class ServiceClient(_ReadyClient):
    """Entry point of the local backend (``cookbook.service_client("local", ...)``).

    Args:
        device: "cuda", "cpu", ... (default: CUDA when available).
        dtype: "float32" / "bfloat16" (default: bf16 on CUDA, fp32 on CPU).
        checkpoint_root: where ``local://`` checkpoints live (default ``COOKBOOK_CHECKPOINT_ROOT``
            or ``~/.cache/cookbook/checkpoints``).
        engine: share an explicit :class:`Engine` (default: one per device and dtype per process).
        activation_checkpointing: recompute each decoder layer's activations in backward instead of
            keeping them (less memory for long sequences, about a third more compute).
    """

    def __init__(
        self,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        checkpoint_root: str | os.PathLike | None = None,
        engine: Engine | None = None,
        activation_checkpointing: bool = False,
    ) -> None:
        self.engine = engine or default_engine(device, dtype, activation_checkpointing)
        self.checkpoint_root = Path(checkpoint_root) if checkpoint_root else checkpoints.default_root()
        for leftover in checkpoints.remove_stale_saves(self.checkpoint_root):
            logger.warning("removed %s, the unfinished save of a process that was killed", leftover)
        self.session_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self._run_counter = itertools.count()
        self._sampler_counter = itertools.count()

    # --- training clients ---------------------------------------------------------------
    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        user_metadata: dict[str, str] | None = None,
        *,
        alpha: float = 32.0,
    ) -> "TrainingClient":
        base, spec = self._lora_spec(base_model, rank, train_mlp, train_attn, train_unembed, alpha)
        adapter = self.engine.call(lambda: new_adapter(base.model, spec, seed, base.device))
        return TrainingClient(self, base, adapter, f"{self.session_id}_train_{next(self._run_counter)}",
                              user_metadata)

    def lora_training_bytes(self, base_model: str, rank: int = 32, train_mlp: bool = True, train_attn: bool = True,
                            train_unembed: bool = True) -> int:
        """What a training client with these settings would hold (adapter, gradients, Adam moments);
        the same errors as :meth:`create_lora_training_client` for settings it would refuse."""
        base, spec = self._lora_spec(base_model, rank, train_mlp, train_attn, train_unembed)
        return training_bytes(base.model, spec)

    def _lora_spec(self, base_model: str, rank: int, train_mlp: bool, train_attn: bool, train_unembed: bool,
                   alpha: float = 32.0) -> tuple[BaseModel, LoraSpec]:
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise errors.InvalidRequestError(f"rank must be a positive integer, got {rank!r}")
        if not (train_mlp or train_attn or train_unembed):
            raise errors.InvalidRequestError("at least one of train_mlp, train_attn, train_unembed must be True")
        spec = LoraSpec(rank=rank, alpha=float(alpha), train_attn=train_attn, train_mlp=train_mlp,
                        train_unembed=train_unembed)
        base = self.engine.model(base_model)
        limit = max_rank(base.model, spec)
        if rank > limit:
            raise errors.InvalidRequestError(
                f"rank {rank} exceeds what {base.name} supports: at most {limit}, the narrowest adapted layer's width")
        return base, spec

    def create_training_client_from_state(
        self, path: str, base_model: str | None = None, user_metadata: dict[str, str] | None = None,
        **_: Any,
    ) -> "TrainingClient":
        """A new training run starting from a checkpoint's weights, with a fresh optimizer."""
        return self._from_state(path, base_model, user_metadata, with_optimizer=False)

    def create_training_client_from_state_with_optimizer(
        self, path: str, base_model: str | None = None, user_metadata: dict[str, str] | None = None,
        **_: Any,
    ) -> "TrainingClient":
        """A new training run resuming a checkpoint exactly: weights and optimizer state."""
        return self._from_state(path, base_model, user_metadata, with_optimizer=True)

    def _from_state(self, path, base_model, user_metadata, with_optimizer: bool) -> "TrainingClient":
        directory = checkpoints.resolve(path, self.checkpoint_root)
        info = checkpoints.read_info(directory)
        if with_optimizer and not info.has_optimizer:
            raise errors.CheckpointNotFoundError(
                f"{path} holds no optimizer state; use create_training_client_from_state")
        client = self.create_lora_training_client(
            base_model or info.base_model, rank=info.lora.rank, train_mlp=info.lora.train_mlp,
            train_attn=info.lora.train_attn, train_unembed=info.lora.train_unembed,
            user_metadata=user_metadata, alpha=info.lora.alpha)
        self.engine.call(lambda: client._load(directory, with_optimizer))
        return client

    # --- sampling clients ---------------------------------------------------------------
    def create_sampling_client(
        self, model_path: str | None = None, base_model: str | None = None, retry_config: Any = None,
        **_: Any,
    ) -> "SamplingClient":
        if model_path is None and base_model is None:
            raise errors.InvalidRequestError("create_sampling_client needs model_path or base_model")
        if model_path is None:
            assert base_model is not None
            return SamplingClient(self, self.engine.model(base_model), None)
        directory = checkpoints.resolve(model_path, self.checkpoint_root)
        info = checkpoints.read_info(directory)
        base = self.engine.model(base_model or info.base_model)

        def load() -> Adapter:
            adapter = new_adapter(base.model, info.lora, None, base.device)
            adapter.load_state_dict(checkpoints.load_adapter_weights(directory))
            return adapter.snapshot(base.dtype)
        return SamplingClient(self, base, self.engine.call(load))

    def get_server_capabilities(self) -> types.GetServerCapabilitiesResponse:
        names = sorted({"tiny", *self.engine._models})
        models = []
        for name in names:
            ctx = self.engine._models[name].max_context if name in self.engine._models else None
            models.append(types.SupportedModel(model_name=name, max_context_length=ctx))
        return types.GetServerCapabilitiesResponse(supported_models=models)


class TrainingClient(_ReadyClient):
    """One LoRA adapter being trained on a shared frozen base model."""

    def __init__(self, service: ServiceClient, base: BaseModel, adapter: Adapter, run_id: str,
                 user_metadata: dict[str, str] | None) -> None:
        self.service, self.base, self.adapter = service, base, adapter
        self.model_id = run_id
        self.user_metadata = dict(user_metadata or {})
        self._params = adapter.parameters()
        self._optimizer = torch.optim.AdamW(self._params, lr=1e-4, betas=(0.9, 0.95), eps=1e-12, weight_decay=0.0)
        self._engine = service.engine

    # --- info ---------------------------------------------------------------------------
    def get_info(self) -> types.GetInfoResponse:
        return types.GetInfoResponse(
            model_id=self.model_id,
            model_data=types.ModelData(arch=type(self.base.model).__name__, model_name=self.base.name,
                                       tokenizer_id=self.base.location),
            is_lora=True, lora_rank=self.adapter.spec.rank, model_name=self.base.name)

    def get_tokenizer(self):
        return self.base.tokenizer

    # --- forward / backward ---------------------------------------------------------------
    def forward(self, data: Sequence[types.Datum], loss_fn: str,
                loss_fn_config: Mapping[str, float | str] | None = None) -> LocalFuture[types.ForwardBackwardOutput]:
        prepared, spec, cfg = self._prepare(data, loss_fn, loss_fn_config, backward=False)
        return self._engine.submit(lambda: self._builtin_pass(prepared, spec, cfg, backward=False))

    def forward_backward(self, data: Sequence[types.Datum], loss_fn: str,
                         loss_fn_config: Mapping[str, float | str] | None = None
                         ) -> LocalFuture[types.ForwardBackwardOutput]:
        prepared, spec, cfg = self._prepare(data, loss_fn, loss_fn_config)
        return self._engine.submit(lambda: self._builtin_pass(prepared, spec, cfg, backward=True))

    def forward_backward_custom(self, data: Sequence[types.Datum], loss_fn: CustomLossFn,
                                **_: Any) -> LocalFuture[types.ForwardBackwardOutput]:
        """``loss_fn(data, logprobs) -> (loss, metrics)`` on differentiable per-datum logprobs.

        Runs in a single forward pass; ``weights`` is optional here (only ``target_tokens`` is read).
        """
        if not callable(loss_fn):
            raise errors.InvalidRequestError("forward_backward_custom needs a callable loss_fn(data, logprobs)")
        prepared = validation.prepare_data(data, required=(), vocab_size=self.base.vocab_size,
                                           max_context=self.base.max_context, multi_target=True)
        self._check_fits(prepared)
        data = list(data)
        return self._engine.submit(lambda: self._custom_pass(data, prepared, loss_fn))

    def _prepare(self, data, loss_fn, loss_fn_config, backward: bool = True):
        spec = validation.loss_spec(loss_fn, loss_fn_config)
        prepared = validation.prepare_data(data, required=spec.inputs, vocab_size=self.base.vocab_size,
                                           max_context=self.base.max_context, multi_target=spec.multi_target)
        if backward:
            self._check_fits(prepared)
        return prepared, spec, resolve_config(spec, loss_fn_config)

    def _check_fits(self, prepared: list[validation.PreparedDatum]) -> None:
        """Reject, at submission, a sequence too long for the free memory even with checkpointing."""
        self.base.train_budget(self._engine.train_token_budget).check([len(p.tokens) for p in prepared])

    def _batches(self, prepared: list[validation.PreparedDatum], backward: bool = True) -> list[MicroBatch]:
        """Micro-batches of at most the engine's token cap; with ``backward``, also what fits the memory
        free when the pass runs (checked again: it may have shrunk since submission)."""
        lengths = [len(p.tokens) for p in prepared]
        overhead = overhead_tokens(self.base.device)
        if not backward:  # nothing is kept for a backward pass: only the cap applies
            return [MicroBatch(b, False) for b in micro_batches(lengths, self._engine.train_token_budget, overhead)]
        budget = self.base.train_budget(self._engine.train_token_budget)
        budget.check(lengths)
        return plan(lengths, budget, overhead)

    def _logprobs(self, prepared, batch: MicroBatch) -> list[torch.Tensor]:
        idx = batch.indices
        with self.base.layer_checkpointing(batch.checkpointed):
            return self.base.sequence_logprobs([prepared[i].tokens for i in idx], [prepared[i].targets for i in idx],
                                               [prepared[i].documents for i in idx])

    def _builtin_pass(self, prepared, spec, cfg, backward: bool) -> types.ForwardBackwardOutput:
        logprobs: list[torch.Tensor | None] = [None] * len(prepared)
        total = 0.0
        grads = [torch.zeros_like(p) for p in self._params] if backward else []
        with use_adapters(self.adapter), torch.set_grad_enabled(backward):
            for batch in self._batches(prepared, backward):
                idx = batch.indices
                lps = self._logprobs(prepared, batch)
                loss = sum(spec.fn(lp, {k: v.to(lp.device) for k, v in prepared[i].inputs.items()}, cfg)
                           for i, lp in zip(idx, lps))
                if backward:
                    for acc, g in zip(grads, torch.autograd.grad(loss, self._params, allow_unused=True)):
                        if g is not None:
                            acc += g
                total += float(loss.detach())
                for i, lp in zip(idx, lps):
                    logprobs[i] = lp.detach()
        if backward:
            self._accumulate(grads)
        return _output(cast(list[torch.Tensor], logprobs), {"loss:sum": total})  # each datum was in one batch

    def _custom_pass(self, data, prepared, loss_fn: CustomLossFn) -> types.ForwardBackwardOutput:
        logprobs: list[torch.Tensor | None] = [None] * len(prepared)
        with use_adapters(self.adapter), torch.enable_grad():
            for batch in self._batches(prepared):
                for i, lp in zip(batch.indices, self._logprobs(prepared, batch)):
                    logprobs[i] = lp
            every = cast(list[torch.Tensor], logprobs)  # each datum is in exactly one batch
            loss, metrics = loss_fn(data, every)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise errors.InvalidRequestError("a custom loss must return (scalar tensor, metrics dict)")
            grads = torch.autograd.grad(loss.reshape(()), self._params, allow_unused=True)
        self._accumulate([torch.zeros_like(p) if g is None else g for p, g in zip(self._params, grads)])
        out_metrics = {k: float(v) for k, v in (metrics or {}).items()}
        out_metrics["loss:sum"] = float(loss.detach())
        return _output([lp.detach() for lp in every], out_metrics)

    def _accumulate(self, grads: Sequence[torch.Tensor]) -> None:
        """Add a finished pass's gradients; runs only after the whole pass succeeded."""
        for p, g in zip(self._params, grads):
            p.grad = g.clone() if p.grad is None else p.grad.add_(g)

    # --- optimizer ----------------------------------------------------------------------
    def optim_step(self, optim_params: types.AdamParams | None = None, *,
                   adam_params: types.AdamParams | None = None) -> LocalFuture[types.OptimStepResponse]:
        params = optim_params if optim_params is not None else adam_params
        if (optim_params is None) == (adam_params is None):
            raise errors.OptimizerParamsError("optim_step needs exactly one of optim_params / adam_params")
        if not isinstance(params, types.AdamParams):
            raise errors.OptimizerParamsError(
                "this client's optimizer is AdamW; optim_step needs tinker.types.AdamParams, "
                f"got {type(params).__name__}")
        values = params.model_dump()
        for key in ("learning_rate", "beta1", "beta2", "eps", "weight_decay", "grad_clip_norm"):
            if not np.isfinite(values[key]) or values[key] < 0:
                raise errors.InvalidRequestError(f"AdamParams.{key} must be finite and >= 0, got {values[key]}")
        if not (params.beta1 < 1 and params.beta2 < 1):
            raise errors.InvalidRequestError("AdamParams beta1 and beta2 must be < 1")
        return self._engine.submit(lambda: self._step(params))

    def _step(self, params: types.AdamParams) -> types.OptimStepResponse:
        grads = [p.grad for p in self._params if p.grad is not None]
        norms = [torch.linalg.vector_norm(g) for g in grads]
        norm = float(torch.linalg.vector_norm(torch.stack(norms))) if grads else 0.0
        if params.grad_clip_norm > 0 and grads:
            torch.nn.utils.clip_grad_norm_(self._params, params.grad_clip_norm)
        for group in self._optimizer.param_groups:
            group.update(lr=params.learning_rate, betas=(params.beta1, params.beta2), eps=params.eps,
                         weight_decay=params.weight_decay)
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
        return types.OptimStepResponse(metrics={"grad_norm:mean": norm, "learning_rate:mean": params.learning_rate})

    # --- checkpoints --------------------------------------------------------------------
    def _info(self, kind: str) -> checkpoints.CheckpointInfo:
        return checkpoints.CheckpointInfo(self.base.name, self.adapter.spec, kind, kind == checkpoints.TRAINING)

    def save_state(self, name: str, ttl_seconds: int | None = None, overwrite: bool = False,
                   user_metadata: dict[str, str] | None = None) -> LocalFuture[types.SaveWeightsResponse]:
        """Adapter weights and optimizer state, resumable with ``create_training_client_from_state_with_optimizer``."""
        checkpoints.check_name(name)

        def run():
            path = checkpoints.write(self.service.checkpoint_root, self.model_id, checkpoints.TRAINING, name,
                                     self._info(checkpoints.TRAINING), self.adapter, self._optimizer.state_dict(),
                                     overwrite)
            return types.SaveWeightsResponse(path=path)
        return self._engine.submit(run)

    def save_weights_for_sampler(self, name: str, ttl_seconds: int | None = None,
                                 user_metadata: dict[str, str] | None = None
                                 ) -> LocalFuture[types.SaveWeightsForSamplerResponse]:
        """Adapter weights for sampling. The SDK gives this call no ``overwrite``: a name already saved
        by this training run is refused rather than silently replaced."""
        checkpoints.check_name(name)

        def run():
            path = checkpoints.write(self.service.checkpoint_root, self.model_id, checkpoints.SAMPLER, name,
                                     self._info(checkpoints.SAMPLER), self.adapter, None, False)
            return types.SaveWeightsForSamplerResponse(path=path)
        return self._engine.submit(run)

    def save_weights_and_get_sampling_client(self, name: str | None = None, retry_config: Any = None,
                                             **_: Any) -> "SamplingClient":
        """A sampler on a snapshot of the current weights (after every request submitted before it)."""
        snapshot = self._engine.call(lambda: self.adapter.snapshot(self.base.dtype))
        return SamplingClient(self.service, self.base, snapshot)

    def create_sampling_client(self, model_path: str, retry_config: Any = None, **_: Any) -> "SamplingClient":
        return self.service.create_sampling_client(model_path=model_path)

    def load_state(self, path: str, **_: Any) -> LocalFuture[types.LoadWeightsResponse]:
        """Replace the adapter weights with a checkpoint's (the optimizer state is kept)."""
        return self._submit_load(path, with_optimizer=False)

    def load_state_with_optimizer(self, path: str, **_: Any) -> LocalFuture[types.LoadWeightsResponse]:
        return self._submit_load(path, with_optimizer=True)

    def _submit_load(self, path: str, with_optimizer: bool) -> LocalFuture[types.LoadWeightsResponse]:
        directory = checkpoints.resolve(path, self.service.checkpoint_root)
        self._check_compatible(checkpoints.read_info(directory), with_optimizer, path)

        def run():
            self._load(directory, with_optimizer)
            return types.LoadWeightsResponse(path=str(path))
        return self._engine.submit(run)

    def _check_compatible(self, info: checkpoints.CheckpointInfo, with_optimizer: bool, path: str) -> None:
        if info.lora != self.adapter.spec:
            raise errors.ModelMismatchError(f"{path} has LoRA config {info.lora}, this client has {self.adapter.spec}")
        if with_optimizer and not info.has_optimizer:
            raise errors.CheckpointNotFoundError(f"{path} holds no optimizer state")

    def _load(self, directory: Path, with_optimizer: bool) -> None:
        weights = checkpoints.load_adapter_weights(directory)
        state = checkpoints.load_optimizer_state(directory) if with_optimizer else None
        self.adapter.load_state_dict(weights)
        for p in self._params:
            p.grad = None
        if state is not None:
            self._optimizer.load_state_dict(state)


class SamplingClient(_ReadyClient):
    """Samples from the base model with a frozen adapter snapshot (or none: the base model)."""

    def __init__(self, service: ServiceClient, base: BaseModel, adapter: Adapter | None) -> None:
        self.service, self.base, self.adapter = service, base, adapter
        self._engine = service.engine
        self._seed_source = np.random.default_rng()

    def get_tokenizer(self):
        return self.base.tokenizer

    def get_base_model(self) -> str:
        return self.base.name

    def sample(self, prompt: types.ModelInput, num_samples: int, sampling_params: types.SamplingParams,
               include_prompt_logprobs: bool = False, topk_prompt_logprobs: int = 0,
               **_: Any) -> LocalFuture[types.SampleResponse]:
        tokens, max_tokens = validation.sampling_request(
            prompt, num_samples, sampling_params, vocab_size=self.base.vocab_size,
            max_context=self.base.max_context, topk_prompt_logprobs=topk_prompt_logprobs)
        generator = torch.Generator(device=self.base.device)
        seed = sampling_params.seed
        generator.manual_seed(int(seed) if seed is not None else int(self._seed_source.integers(2**62)))
        job = SampleJob(tokens, num_samples, sampling_params, max_tokens, self.adapter, LocalFuture(),
                        include_prompt_logprobs=include_prompt_logprobs, topk_prompt_logprobs=topk_prompt_logprobs,
                        generator=generator)
        return self._engine.submit_sample(self.base, job)

    def compute_logprobs(self, prompt: types.ModelInput, **_: Any) -> LocalFuture[list[float | None]]:
        """Log-probabilities of each prompt token given the ones before it (``None`` first)."""
        inner = self.sample(prompt, 1, types.SamplingParams(max_tokens=1), include_prompt_logprobs=True)
        outer: LocalFuture[list[float | None]] = LocalFuture()

        def done(f):
            if f.exception() is not None:
                outer._fail(f.exception())
            else:
                outer._set(f.result().prompt_logprobs)
        inner.future().add_done_callback(done)
        return outer


def _output(logprobs: Sequence[torch.Tensor], metrics: dict[str, float]) -> types.ForwardBackwardOutput:
    return types.ForwardBackwardOutput(
        loss_fn_output_type="ArrayRecord",
        loss_fn_outputs=[{"logprobs": types.TensorData.from_numpy(lp.float().cpu().numpy())} for lp in logprobs],
        metrics=metrics,
    )
