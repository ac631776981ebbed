"""The local service client mirroring ``tinker`` 0.38's ``ServiceClient``, running in-process.

Client factories return the client itself; like the SDK's client futures, a client also has
``.result()`` and is awaitable (both give the client back), so code written in either style runs.
A service client is one session: its training runs and samplers are listed under it
(``create_rest_client().get_session(...)``), its samplers' stability records are its own
(``stable_reinforce`` can only train on sequences sampled in the same session), and
:meth:`ServiceClient.new_session` makes another on the same engine and checkpoint root (the Tinker
server makes one per client session). The training and sampling clients live in ``training.py``
and ``sampling.py``; the REST calls in ``rest.py``.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from tinker import types

from . import checkpoints, errors, memory, optimizer
from .engine import Engine, default_engine
from .futures import LocalFuture
from .lora import Adapter, LoraSpec, max_rank, new_adapter, training_bytes
from .model import BaseModel
from .registry import LOCAL_OWNER, Registry, RunRecord, SamplerRecord, SessionRecord
from .rest import RestClient
from .sampling import ReadyClient, SamplingClient
from .stability import DAY_S, StabilityStore
from .training import TrainingClient

FULL_TRAINING_BYTES_PER_PARAM = 4 * 4  # fp32 weights, gradients and two Adam moments


logger = logging.getLogger(__name__)


class ServiceClient(ReadyClient):
    """Entry point of the local backend (``cookbook.service_client("local", ...)``).

    Args:
        device: "cuda", "cpu", ... (default: CUDA when available).
        dtype: "float32" / "bfloat16" (default: bf16 on CUDA, fp32 on CPU).
        checkpoint_root: where ``local://`` checkpoints live (default ``COOKBOOK_CHECKPOINT_ROOT``
            or ``~/.cache/cookbook/checkpoints``).
        engine: share an explicit :class:`Engine` (default: one per device and dtype per process).
        activation_checkpointing: recompute each decoder layer's activations in backward instead of
            keeping them (less memory for long sequences, about a third more compute).
        session_id, owner, user_metadata, project_id, display_name: how the session is listed
            (``owner`` "local" by default; the Tinker server passes a hash of the API key).
        stability_ttl_s: how long a stability record lives after its last use (one day).
    """

    def __init__(
        self,
        *,
        device: str | None = None,
        dtype: str | torch.dtype | None = None,
        checkpoint_root: str | os.PathLike | None = None,
        engine: Engine | None = None,
        activation_checkpointing: bool = False,
        session_id: str | None = None,
        owner: str = LOCAL_OWNER,
        user_metadata: dict[str, str] | None = None,
        project_id: str | None = None,
        display_name: str | None = None,
        stability_ttl_s: float = DAY_S,
    ) -> None:
        self.engine = engine or default_engine(device, dtype, activation_checkpointing)
        self.checkpoint_root = Path(checkpoint_root) if checkpoint_root else checkpoints.default_root()
        for leftover in checkpoints.remove_stale_saves(self.checkpoint_root):
            logger.warning("removed %s, the unfinished save of a process that was killed", leftover)
        self.session_id = session_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.owner = owner
        self.registry = Registry.of(self.checkpoint_root)
        self.session = self.registry.sessions.add(SessionRecord(
            self.session_id, owner, user_metadata=dict(user_metadata) if user_metadata else None,
            display_name=display_name, project_id=project_id))
        self.stability = StabilityStore(ttl_s=stability_ttl_s)
        self._run_counter = itertools.count()
        self._sampler_counter = itertools.count()

    def new_session(self, session_id: str | None = None, *, owner: str | None = None,
                    user_metadata: dict[str, str] | None = None, project_id: str | None = None,
                    display_name: str | None = None) -> ServiceClient:
        """Another session on the same engine and checkpoint root."""
        return ServiceClient(engine=self.engine, checkpoint_root=self.checkpoint_root, session_id=session_id,
                             owner=owner or self.owner, user_metadata=user_metadata, project_id=project_id,
                             display_name=display_name, stability_ttl_s=self.stability.ttl_s)

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
        optimizer: types.OptimizerConfig | None = None,
        *,
        alpha: float = 32.0,
        run_id: str | None = None,
    ) -> TrainingClient:
        """A LoRA adapter on ``base_model``; ``optimizer`` picks AdamW (default) or Dimuon for its lifetime.
        ``run_id`` names the run (default ``<session>_train_<n>``; the Tinker server passes the SDK's model id)."""
        family = _family(optimizer)
        base, spec = self._lora_spec(base_model, rank, train_mlp, train_attn, train_unembed, alpha)
        adapter = self.engine.call(lambda: new_adapter(base.model, spec, seed, base.device))
        return self._new_run(base, adapter, run_id, user_metadata, family)

    def create_full_training_client(self, base_model: str, seed: int | None = None,
                                    user_metadata: dict[str, str] | None = None,
                                    optimizer: types.OptimizerConfig | None = None, *,
                                    run_id: str | None = None) -> TrainingClient:
        """Full fine-tuning (no LoRA): a private fp32 copy of every weight of ``base_model`` is trained.
        Refused with ``OutOfMemoryError`` when its weights, gradients and optimizer state would not fit
        in the free memory. (The SDK has no method for it; the Tinker server makes one for a
        ``create_model`` request without ``lora_config``.)"""
        family = _family(optimizer)
        base = self.engine.model(base_model)
        need, free = self.full_training_bytes(base_model), memory.free_memory(base.device)
        if need > free:
            raise errors.OutOfMemoryError(
                f"full fine-tuning {base.name} needs {need / 2**30:.2f} GiB for its weights, gradients and optimizer "
                f"state; {free / 2**30:.2f} GiB is free. Train a LoRA adapter instead")
        trainable = self.engine.call(lambda: base.copy(torch.float32, trainable=True))
        return self._new_run(trainable, None, run_id, user_metadata, family)

    def full_training_bytes(self, base_model: str) -> int:
        return self.engine.model(base_model).num_parameters() * FULL_TRAINING_BYTES_PER_PARAM

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

    def _new_run(self, base: BaseModel, adapter: Adapter | None, run_id: str | None,
                 user_metadata: dict[str, str] | None, family: str) -> TrainingClient:
        run_id = run_id or f"{self.session_id}_train_{next(self._run_counter)}"
        self.registry.runs.create(RunRecord(
            run_id, base.name, adapter.spec if adapter else None, family, owner=self.owner, session_id=self.session_id,
            project_id=self.session.project_id, user_metadata=dict(user_metadata) if user_metadata else None))
        self.session.training_run_ids.append(run_id)
        return TrainingClient(self, base, adapter, run_id, user_metadata, family)

    def create_training_client_from_state(
        self, path: str, base_model: str | None = None, user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None, optimizer: types.OptimizerConfig | None = None, *,
        run_id: str | None = None,
    ) -> TrainingClient:
        """A new training run starting from a checkpoint's weights, with a fresh optimizer (``optimizer``)."""
        return self._from_state(path, base_model, user_metadata, False, _family(optimizer), run_id)

    def create_training_client_from_state_with_optimizer(
        self, path: str, base_model: str | None = None, user_metadata: dict[str, str] | None = None,
        weights_access_token: str | None = None, *, run_id: str | None = None,
    ) -> TrainingClient:
        """A new training run resuming a checkpoint exactly: weights and optimizer state (and family)."""
        return self._from_state(path, base_model, user_metadata, True, None, run_id)

    def _from_state(self, path, base_model, user_metadata, with_optimizer: bool, family: str | None,
                    run_id: str | None) -> TrainingClient:
        directory = self._checkpoint_dir(path)
        info = checkpoints.read_info(directory)
        if with_optimizer and not info.has_optimizer:
            raise errors.CheckpointNotFoundError(
                f"{path} holds no optimizer state; use create_training_client_from_state")
        if info.kind == checkpoints.EXTERNAL:
            raise errors.InvalidRequestError(f"{path} is an external (Hugging Face) export; load a weights or "
                                             "sampler_weights checkpoint")
        family = info.optimizer if with_optimizer else family
        config = optimizer.config_of(family or optimizer.ADAMW)
        if info.lora is None:
            client = self.create_full_training_client(base_model or info.base_model, user_metadata=user_metadata,
                                                      optimizer=config, run_id=run_id)
        else:
            client = self.create_lora_training_client(
                base_model or info.base_model, rank=info.lora.rank, train_mlp=info.lora.train_mlp,
                train_attn=info.lora.train_attn, train_unembed=info.lora.train_unembed,
                user_metadata=user_metadata, optimizer=config, alpha=info.lora.alpha, run_id=run_id)
        self.engine.call(lambda: client._load(directory, with_optimizer))
        return client

    # --- sampling clients ---------------------------------------------------------------
    def create_sampling_client(
        self, model_path: str | None = None, base_model: str | None = None, retry_config: Any = None,
        record_stability_info: bool = False, *, sampler_id: str | None = None,
    ) -> SamplingClient:
        """A sampler on saved weights (``model_path``: sampler or training weights) or on ``base_model``;
        with ``record_stability_info`` its samples are recorded for ``stable_reinforce``."""
        if model_path is None and base_model is None:
            raise errors.InvalidRequestError("create_sampling_client needs model_path or base_model")
        if model_path is None:
            assert base_model is not None
            return self._sampling_client(self.engine.model(base_model), None, sampler_id=sampler_id, model_path=None,
                                         record_stability_info=record_stability_info)
        directory = self._checkpoint_dir(model_path)
        info = checkpoints.read_info(directory)
        if info.kind == checkpoints.EXTERNAL:
            raise errors.InvalidRequestError(f"{model_path} is an external (Hugging Face) export; sample from a "
                                             "sampler_weights or weights checkpoint")
        base = self.engine.model(base_model or info.base_model)
        weights = checkpoints.load_weights(directory)
        if info.lora is None:
            full = self.engine.call(lambda: base.copy(self.engine.dtype, weights))
            return self._sampling_client(full, None, sampler_id=sampler_id, model_path=str(model_path),
                                         record_stability_info=record_stability_info)
        spec = info.lora

        def load() -> Adapter:
            adapter = new_adapter(base.model, spec, None, base.device)
            adapter.load_state_dict(weights)
            return adapter.snapshot(base.dtype)
        return self._sampling_client(base, self.engine.call(load), sampler_id=sampler_id, model_path=str(model_path),
                                     record_stability_info=record_stability_info)

    def _sampling_client(self, base: BaseModel, adapter: Adapter | None, *, sampler_id: str | None,
                         model_path: str | None, record_stability_info: bool) -> SamplingClient:
        sampler_id = sampler_id or f"{self.session_id}:sample:{next(self._sampler_counter)}"
        self.session.sampler_ids.append(sampler_id)
        self.registry.samplers[sampler_id] = SamplerRecord(sampler_id, self.session_id, base.name, model_path)
        return SamplingClient(self, base, adapter, sampler_id=sampler_id, model_path=model_path,
                              record_stability_info=record_stability_info)

    def _checkpoint_dir(self, path: str | os.PathLike) -> Path:
        """The checkpoint's directory, if this session's owner may read it: its own run's, a published
        one, one of a run with no owner (a filesystem path, or a run older than the registry), or one of
        an in-process run on this machine (owner ``local``: the operator's, shared with a server's keys)."""
        directory = checkpoints.resolve(path, self.checkpoint_root)
        parsed = checkpoints.parse(str(path))
        if parsed is not None:
            record = self.registry.runs.get(parsed[0])
            if record is not None and record.owner not in (None, LOCAL_OWNER, self.owner) and not checkpoints.read_info(
                    directory).public:
                raise errors.CheckpointNotFoundError(
                    f"no checkpoint at {path} that you may read (it belongs to another user and is not published)")
        return directory

    # --- the rest of ServiceClient ----------------------------------------------------------
    def get_server_capabilities(self) -> types.GetServerCapabilitiesResponse:
        names = sorted({"tiny", *self.engine._models})
        models = []
        for name in names:
            ctx = self.engine._models[name].max_context if name in self.engine._models else None
            models.append(types.SupportedModel(model_name=name, max_context_length=ctx, trainable=True,
                                               sampleable=True))
        return types.GetServerCapabilitiesResponse(supported_models=models)

    def create_rest_client(self, *, owner: str | None = None, scheme: str | None = None) -> RestClient:
        """The REST calls (training runs, checkpoints, sessions) as this session's owner (or ``owner``)
        sees them, with paths in ``scheme`` (default ``local://``)."""
        return RestClient(self, owner=owner, scheme=scheme or checkpoints.SCHEME)

    def copy_weights(self, path: str, *, ttl_seconds: int | None = None,
                     weights_access_token: str | None = None, run_id: str | None = None,
                     project_id: str | None = None) -> LocalFuture[str]:
        """Copy a checkpoint into a new training run of this session (hard links: no bytes duplicated);
        the new checkpoint's path. The copy's run holds checkpoints only (it cannot be trained)."""
        directory = self._checkpoint_dir(path)
        info = checkpoints.read_info(directory)
        expires = checkpoints.expiry(ttl_seconds)
        parsed = checkpoints.parse(str(path))
        kind, name = (parsed[1], parsed[2]) if parsed else (info.kind, directory.name)
        run_id = run_id or f"{self.session_id}_copy_{uuid.uuid4().hex[:8]}"
        target = self.checkpoint_root / run_id / kind / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(directory, target, copy_function=_link_or_copy)
        checkpoints.write_info(target, checkpoints.CheckpointInfo(
            info.base_model, info.lora, info.kind, info.has_optimizer, info.optimizer, time.time(),
            info.user_metadata, expires, False))
        self.registry.runs.create(RunRecord(
            run_id, info.base_model, info.lora, info.optimizer, owner=self.owner, session_id=self.session_id,
            project_id=project_id or self.session.project_id, copied_from=str(path)))
        self.session.training_run_ids.append(run_id)
        return LocalFuture.completed(checkpoints.path_of(run_id, kind, name))

    def close(self, status: str = "success", detail: str | None = None) -> LocalFuture[None]:
        """End the session (``success`` / ``errored`` / ``interrupted``); idempotent (the first reason stays)."""
        if status not in ("success", "errored", "interrupted"):
            raise errors.InvalidRequestError(f"close status must be success, errored or interrupted, got {status!r}")
        self.registry.sessions.finish(self.session_id, status, detail)
        return LocalFuture.completed(None)


def _family(config: types.OptimizerConfig | None) -> str:
    return optimizer.family_of(config)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
