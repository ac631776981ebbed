"""The local training client: one LoRA adapter on the shared frozen base model, or (full fine-tuning)
a private trainable copy of the model; with the optimizer family chosen when it was created.

Every request method validates its input at once (raising a typed error from ``errors`` and leaving
all state untouched) and returns a :class:`LocalFuture`; requests run on the engine in submission
order and gradients accumulate across ``forward_backward`` calls until ``optim_step``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from tinker import types
from tinker.types.optimizer import OptimParamsBase

from . import checkpoints, errors, optimizer, stability, validation
from .export import write_merged, write_peft
from .futures import LocalFuture
from .lora import Adapter, use_adapters
from .losses import BEHAVIOUR_LOGPROBS, SAMPLED_MASK, LossSpec, resolve_config
from .memory import MicroBatch, group, overhead_tokens, plan
from .model import BaseModel, full_state, load_full_state
from .sampling import ReadyClient, SamplingClient

if TYPE_CHECKING:
    from .clients import ServiceClient

CustomLossFn = Callable[[list[types.Datum], list[torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]


class TrainingClient(ReadyClient):
    """One training run: a LoRA adapter (``adapter``) on the shared base, or, with ``adapter=None``, every
    weight of ``base`` (a private copy: full fine-tuning)."""

    def __init__(self, service: ServiceClient, base: BaseModel, adapter: Adapter | None, run_id: str,
                 user_metadata: dict[str, str] | None, optimizer_family: str = optimizer.ADAMW) -> None:
        self.service, self.base, self.adapter = service, base, adapter
        self.model_id = run_id
        self.user_metadata = dict(user_metadata or {})
        if adapter is not None:
            self._params = adapter.parameters()
        else:
            self._params = list({id(p): p for p in base.model.parameters()}.values())
        self._optimizer = optimizer.make(optimizer_family, self._params, adapter.spec.rank if adapter else None)
        self._engine = service.engine

    @property
    def is_lora(self) -> bool:
        return self.adapter is not None

    # --- info ---------------------------------------------------------------------------
    def get_info(self) -> types.GetInfoResponse:
        return types.GetInfoResponse(
            model_id=self.model_id,
            model_data=types.ModelData(arch=type(self.base.model).__name__, model_name=self.base.name,
                                       tokenizer_id=self.base.location),
            optimizer_config=optimizer.config_of(self._optimizer.family),
            is_lora=self.is_lora, lora_rank=self.adapter.spec.rank if self.adapter else None,
            model_name=self.base.name)

    def get_tokenizer(self):
        return self.base.tokenizer

    def _touch(self) -> None:
        self.service.registry.runs.touch(self.model_id)

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
        self._touch()
        return self._engine.submit(lambda: self._custom_pass(data, prepared, loss_fn))

    def _prepare(self, data, loss_fn, loss_fn_config, backward: bool = True):
        spec = validation.loss_spec(loss_fn, loss_fn_config)
        prepared = validation.prepare_data(data, required=spec.inputs, vocab_size=self.base.vocab_size,
                                           max_context=self.base.max_context, multi_target=spec.multi_target)
        if spec.needs_provenance:
            self._attach_stability(data, prepared)
        if backward:
            self._check_fits(prepared)
        self._touch()
        return prepared, spec, resolve_config(spec, loss_fn_config)

    def _attach_stability(self, data: Sequence[types.Datum], prepared: list[validation.PreparedDatum]) -> None:
        """The recorded behaviour logprobs and sampled-token mask each datum's provenance names."""
        records = self.service.stability.take([sid for d in data for sid in stability.sequence_ids(d)])
        for i, (datum, p) in enumerate(zip(data, prepared)):
            behaviour, sampled = stability.resolve(i, datum, p.tokens, p.targets.numpy(), records)
            p.inputs[BEHAVIOUR_LOGPROBS] = torch.from_numpy(behaviour)
            p.inputs[SAMPLED_MASK] = torch.from_numpy(sampled)

    def _check_fits(self, prepared: list[validation.PreparedDatum]) -> None:
        """Reject, at submission, a sequence too long for the free memory even with checkpointing."""
        self.base.train_budget(self._engine.train_token_budget).check([len(p.tokens) for p in prepared])

    def _batches(self, prepared: list[validation.PreparedDatum], backward: bool = True) -> list[MicroBatch]:
        """Micro-batches of at most the engine's token cap; with ``backward``, also what fits the memory
        free when the pass runs (checked again: it may have shrunk since submission)."""
        lengths = [len(p.tokens) for p in prepared]
        packed = [p.documents is not None and int(p.documents[-1]) > 0 for p in prepared]
        overhead = overhead_tokens(self.base.device)
        if not backward:  # nothing is kept for a backward pass: only the cap applies
            cap = self._engine.train_token_budget
            return [MicroBatch(b, False, cap) for b in group(lengths, cap, overhead, packed)]
        budget = self.base.train_budget(self._engine.train_token_budget)
        budget.check(lengths)
        return plan(lengths, budget, overhead, packed)

    def _logprobs(self, prepared, batch: MicroBatch) -> list[torch.Tensor]:
        idx = batch.indices
        with self.base.layer_checkpointing(batch.checkpointed):
            return self.base.sequence_logprobs([prepared[i].tokens for i in idx], [prepared[i].targets for i in idx],
                                               [prepared[i].documents for i in idx], token_budget=batch.tokens)

    def _builtin_pass(self, prepared, spec: LossSpec, cfg, backward: bool) -> types.ForwardBackwardOutput:
        logprobs: list[torch.Tensor | None] = [None] * len(prepared)
        total = 0.0
        grads = [torch.zeros_like(p) for p in self._params] if backward else []
        with use_adapters(self.adapter), torch.set_grad_enabled(backward):
            for batch in self._batches(prepared, backward):
                idx = batch.indices
                lps = self._logprobs(prepared, batch)
                loss = torch.stack([spec.fn(lp, {k: v.to(lp.device) for k, v in prepared[i].inputs.items()}, cfg)
                                    for i, lp in zip(idx, lps)]).sum()
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
    def optim_step(self, optim_params: types.AdamParams | OptimParamsBase | None = None, *,
                   adam_params: types.AdamParams | None = None) -> LocalFuture[types.OptimStepResponse]:
        """One step of the client's optimizer: ``AdamParams`` for AdamW, ``DimuonParams`` for Dimuon."""
        if (optim_params is None) == (adam_params is None):
            raise errors.OptimizerParamsError("optim_step needs exactly one of optim_params / adam_params")
        settings = self._optimizer.check(optim_params if optim_params is not None else adam_params)
        self._touch()
        return self._engine.submit(lambda: types.OptimStepResponse(metrics=self._optimizer.step(settings)))

    # --- checkpoints --------------------------------------------------------------------
    def _info(self, kind: str, ttl_seconds: int | None = None,
              user_metadata: dict[str, str] | None = None) -> checkpoints.CheckpointInfo:
        return checkpoints.CheckpointInfo(
            self.base.name, self.adapter.spec if self.adapter else None, kind, kind == checkpoints.TRAINING,
            self._optimizer.family, user_metadata=dict(user_metadata) if user_metadata else None,
            expires_at=checkpoints.expiry(ttl_seconds))

    def _weights(self) -> dict[str, torch.Tensor]:
        return self.adapter.state_dict() if self.adapter is not None else full_state(self.base.model)

    def _save(self, kind: str, name: str, ttl_seconds: int | None, user_metadata: dict[str, str] | None,
              overwrite: bool) -> LocalFuture[str]:
        checkpoints.check_name(name)
        _check_metadata(user_metadata)
        info = self._info(kind, ttl_seconds, user_metadata)  # the TTL is checked now
        root, runs = self.service.checkpoint_root, self.service.registry.runs
        self._touch()

        def run() -> str:
            state = self._optimizer.state_dict() if kind == checkpoints.TRAINING else None
            path = checkpoints.write(root, self.model_id, kind, name, info, self._weights(), state, overwrite)
            runs.save_touch(self.model_id)
            return path
        return self._engine.submit(run)

    def save_state(self, name: str, ttl_seconds: int | None = None, overwrite: bool = False,
                   user_metadata: dict[str, str] | None = None) -> LocalFuture[types.SaveWeightsResponse]:
        """Weights and optimizer state, resumable with ``create_training_client_from_state_with_optimizer``."""
        saved = self._save(checkpoints.TRAINING, name, ttl_seconds, user_metadata, overwrite)
        return _then(saved, lambda path: types.SaveWeightsResponse(path=path))

    def save_weights_for_sampler(self, name: str, ttl_seconds: int | None = None,
                                 user_metadata: dict[str, str] | None = None
                                 ) -> LocalFuture[types.SaveWeightsForSamplerResponse]:
        """Weights for sampling. The SDK gives this call no ``overwrite``: a name already saved by this
        training run is refused rather than silently replaced."""
        saved = self._save(checkpoints.SAMPLER, name, ttl_seconds, user_metadata, False)
        return _then(saved, lambda path: types.SaveWeightsForSamplerResponse(path=path))

    def save_weights_external(self, name: str, ttl_seconds: int | None = None,
                              age_encryption_recipients: list[str] | None = None
                              ) -> LocalFuture[types.SaveWeightsExternalResponse]:
        """The current weights as a Hugging Face directory (``local://<run>/external_weights/<name>``): a PEFT
        adapter for LoRA, the whole model for full fine-tuning. Encryption is not available here."""
        if age_encryption_recipients:
            raise errors.InvalidRequestError(
                "age_encryption_recipients: encrypting exported weights is not supported by this backend "
                "(no age implementation); export unencrypted and encrypt the files yourself")
        checkpoints.check_name(name)
        info = self._info(checkpoints.EXTERNAL, ttl_seconds)
        root = self.service.checkpoint_root
        self._touch()

        def run() -> types.SaveWeightsExternalResponse:
            weights = {k: v.detach().cpu().clone() for k, v in self._weights().items()}

            def fill(directory: Path) -> None:
                if info.lora is not None:
                    write_peft(info, weights, directory)
                else:
                    write_merged(info, weights, directory)
            path = checkpoints.write_directory(root, self.model_id, checkpoints.EXTERNAL, name, info, fill)
            return types.SaveWeightsExternalResponse(path=path)
        return self._engine.submit(run)

    def save_weights_and_get_sampling_client(
        self, name: str | None = None, retry_config: Any = None, record_stability_info: bool = False,
        kind: Literal["snapshot", "inflight"] = "snapshot", *, sampler_id: str | None = None,
    ) -> SamplingClient:
        """A sampler on a snapshot of the current weights (after every request submitted before it).
        ``kind="inflight"`` gets a snapshot too (this backend keeps no shared mutable sampler weights)."""
        self._touch()
        if self.adapter is not None:
            adapter = self.adapter
            snapshot = self._engine.call(lambda: adapter.snapshot(self.base.dtype))
            base = self.base
        else:
            snapshot = None
            base = self._engine.call(lambda: self.base.copy(self._engine.dtype, full_state(self.base.model)))
        return self.service._sampling_client(base, snapshot, sampler_id=sampler_id, model_path=None,
                                             record_stability_info=record_stability_info)

    def create_sampling_client(self, model_path: str, retry_config: Any = None, record_stability_info: bool = False,
                               **_: Any) -> SamplingClient:
        return self.service.create_sampling_client(model_path=model_path, record_stability_info=record_stability_info)

    def load_state(self, path: str, **_: Any) -> LocalFuture[types.LoadWeightsResponse]:
        """Replace the weights with a checkpoint's (the optimizer state is kept)."""
        return self._submit_load(path, with_optimizer=False)

    def load_state_with_optimizer(self, path: str, **_: Any) -> LocalFuture[types.LoadWeightsResponse]:
        return self._submit_load(path, with_optimizer=True)

    def _submit_load(self, path: str, with_optimizer: bool) -> LocalFuture[types.LoadWeightsResponse]:
        directory = self.service._checkpoint_dir(path)
        self._check_compatible(checkpoints.read_info(directory), with_optimizer, path)
        self._touch()

        def run():
            self._load(directory, with_optimizer)
            return types.LoadWeightsResponse(path=str(path))
        return self._engine.submit(run)

    def _check_compatible(self, info: checkpoints.CheckpointInfo, with_optimizer: bool, path: str) -> None:
        mine = self.adapter.spec if self.adapter else None
        if info.lora != mine:
            raise errors.ModelMismatchError(f"{path} has {_describe(info.lora)}, this client has {_describe(mine)}")
        if with_optimizer and not info.has_optimizer:
            raise errors.CheckpointNotFoundError(f"{path} holds no optimizer state")
        if with_optimizer and info.optimizer != self._optimizer.family:
            raise errors.ModelMismatchError(
                f"{path} holds {info.optimizer} optimizer state; this client's optimizer is {self._optimizer.family}")

    def _load(self, directory: Path, with_optimizer: bool) -> None:
        weights = checkpoints.load_weights(directory)
        state = checkpoints.load_optimizer_state(directory) if with_optimizer else None
        if self.adapter is not None:
            self.adapter.load_state_dict(weights)
        else:
            load_full_state(self.base.model, weights)
        for p in self._params:
            p.grad = None
        if state is not None:
            self._optimizer.load_state_dict(state)


def _describe(spec: object) -> str:
    return "full fine-tuning" if spec is None else f"LoRA {spec}"


def _check_metadata(user_metadata: object) -> None:
    if user_metadata is None:
        return
    if not isinstance(user_metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in user_metadata.items()):
        raise errors.InvalidRequestError("user_metadata must be a dict of strings to strings")


def _then(future: LocalFuture, fn: Callable[[Any], Any]) -> LocalFuture:
    out: LocalFuture = LocalFuture()

    def done(f: Any) -> None:
        if f.exception() is not None:
            out._fail(f.exception())
        else:
            try:
                out._set(fn(f.result()))
            except Exception as exc:  # noqa: BLE001 - delivered through the future
                out._fail(exc)
    future.future().add_done_callback(done)
    return out


def _output(logprobs: Sequence[torch.Tensor], metrics: dict[str, float]) -> types.ForwardBackwardOutput:
    return types.ForwardBackwardOutput(
        loss_fn_output_type="ArrayRecord",
        loss_fn_outputs=[{"logprobs": types.TensorData.from_numpy(lp.float().cpu().numpy())} for lp in logprobs],
        metrics=metrics,
    )

