"""The endpoints of the Tinker HTTP protocol as the SDK 0.38 speaks it, over :class:`ServerState`.

JSON bodies are parsed with the SDK's own pydantic request types; ``forward_backward`` takes a
protobuf body (:mod:`.wire`). Requests the SDK treats as asynchronous answer ``{"request_id", ...}``
at once and their result comes from ``retrieve_future``; training requests are queued on their
model in ``seq_id`` order (:mod:`.state`). Every call into the local backend goes through its
public client methods (``forward_backward``, ``optim_step``, ``save_state``, ``sample``, ...).
"""

from __future__ import annotations

import io
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
import zstandard
from fastapi import APIRouter, Request, Response
from tinker import types

from cookbook.http_server import JsonBodyError, parse_json_object

from . import paths, wire
from .errors import BadRequest, ErrorRoute, Gone, NotFound, PayloadTooLarge, UnsupportedMediaType
from .jobs import Job, Reply
from .state import ServerState, model_id_of

if TYPE_CHECKING:
    from cookbook.backend import LocalSamplingClient as SamplingClient
    from cookbook.backend import LocalTrainingClient as TrainingClient

M = TypeVar("M", bound=pydantic.BaseModel)
router = APIRouter(prefix="/api/v1", route_class=ErrorRoute)


def _state(request: Request) -> ServerState:
    return request.app.state.server


async def parse_body(request: Request, model: type[M]) -> M:
    """The JSON body validated as ``model`` (400 with the reason when it is not one)."""
    body = await request.body()
    limit = _state(request).config.max_json_bytes
    if len(body) > limit:
        raise PayloadTooLarge(f"the JSON body ({len(body)} bytes) exceeds the server's limit of {limit} bytes "
                              "(max_json_bytes)")
    try:
        value = parse_json_object(body)
    except JsonBodyError as exc:
        raise BadRequest(str(exc)) from None
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise BadRequest(f"invalid {model.__name__}: {problems}") from exc


def _key(request: Request) -> str:
    """The API key the guard let through (per-key quotas)."""
    return getattr(request.state, "api_key", "")


def _accepted(job: Job, **extra: Any) -> dict[str, Any]:
    """The submit reply of an asynchronous request (an ``UntypedAPIFuture``)."""
    return {"request_id": job.request_id, **extra}


def _metadata(value: dict[str, Any] | None) -> dict[str, str] | None:
    return None if value is None else {str(k): str(v) for k, v in value.items()}


# --- service, sessions, telemetry -------------------------------------------------------------

@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.post("/client/config")
async def client_config(request: Request) -> dict[str, Any]:
    """Feature flags (``ClientConfigResponse``): plain API keys, protobuf fwd/bwd sized to the body limit."""
    config = _state(request).config
    return {
        "pjwt_auth_enabled": False,
        "parallel_fwdbwd_chunks": True,
        "proto_compress_fwdbwd": False,
        "fwdbwd_max_chunk_len": config.fwdbwd_max_chunk_len,
        "fwdbwd_max_chunk_bytes_count": min(5_000_000, config.max_request_bytes // 2),
        "sample_max_concurrent_requests": config.max_pending_samples,
        "sample_use_retrieve_futures": False,
        "custom_loss_server_side": False,
        "sample_join_sampling_session": False,
    }


@router.post("/client/dynamic_config")
async def client_dynamic_config() -> dict[str, Any]:
    return {"refresh_interval_sec": 300, "sample_cancel_enabled": False}


@router.get("/get_server_capabilities")
async def get_server_capabilities(request: Request) -> dict[str, Any]:
    return _state(request).service.get_server_capabilities().model_dump(mode="json", exclude_none=True)


@router.post("/create_session")
async def create_session(request: Request) -> dict[str, Any]:
    req = await parse_body(request, types.CreateSessionRequest)
    session_id = _state(request).create_session(_key(request), user_metadata=_metadata(req.user_metadata),
                                                project_id=req.project_id, display_name=req.display_name)
    return {"type": "create_session", "session_id": session_id}


@router.post("/session_heartbeat")
async def session_heartbeat(request: Request) -> dict[str, Any]:
    req = await parse_body(request, types.SessionHeartbeatRequest)
    _state(request).session(req.session_id)
    return {"type": "session_heartbeat"}


class _FinishRequest(pydantic.BaseModel):
    reason: dict[str, Any] = {}
    detail: str | None = None


@router.post("/sessions/{session_id}/finish")
async def finish_session(session_id: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    req = await parse_body(request, _FinishRequest)
    try:
        state.session(session_id)
    except Gone:  # already ended (timed out, or finished before): finishing again is fine
        return {}
    status = req.reason.get("type") if req.reason.get("type") in ("success", "errored", "interrupted") else "success"
    state.end_session(session_id, req.detail or "finished by the client", finished=str(status))
    return {}


@router.post("/telemetry")
async def telemetry() -> dict[str, str]:
    return {"status": "accepted"}  # accepted and dropped


@router.post("/cancel_future")
async def cancel_future() -> dict[str, Any]:
    return {}  # not advertised (sample_cancel_enabled is false); a sample that was asked for still runs


# --- futures ----------------------------------------------------------------------------------

@router.post("/retrieve_future")
async def retrieve_future(request: Request) -> Any:
    """The request's result, or ``try_again`` after holding the call for up to ``long_poll_s``."""
    state = _state(request)
    req = await parse_body(request, types.FutureRetrieveRequest)
    job = state.jobs.get(req.request_id)
    if job is None:
        raise NotFound(f"unknown request_id {req.request_id!r} (never issued, or its result expired)")
    reply = await state.jobs.wait(job, state.config.long_poll_s)
    if reply is None:
        return {"type": "try_again", "request_id": req.request_id, "queue_state": "active"}
    return Response(reply.body, media_type=reply.media_type)


# --- training ---------------------------------------------------------------------------------

@router.post("/create_model")
async def create_model(request: Request) -> dict[str, Any]:
    state = _state(request)
    req = await parse_body(request, types.CreateModelRequest)
    model_id = model_id_of(req.session_id, req.model_seq_id)

    lora = req.lora_config
    if lora is not None and not 1 <= lora.rank <= state.config.max_lora_rank:
        raise BadRequest(f"lora_config.rank must be in 1..{state.config.max_lora_rank} (max_lora_rank), "
                         f"got {lora.rank}")
    session = state.session(req.session_id)
    key, backend = session.key, session.backend

    def create(_: None) -> object:
        metadata = _metadata(req.user_metadata)
        if lora is None:  # full fine-tuning (the SDK 0.38 has no method for it; other clients may ask)
            state.reserve_training_bytes(key, model_id, backend.full_training_bytes(req.base_model))
            return backend.create_full_training_client(req.base_model, user_metadata=metadata,
                                                       optimizer=req.optimizer_config, run_id=model_id)
        state.reserve_training_bytes(key, model_id, backend.lora_training_bytes(
            req.base_model, rank=lora.rank, train_mlp=lora.train_mlp, train_attn=lora.train_attn,
            train_unembed=lora.train_unembed))
        return backend.create_lora_training_client(
            req.base_model, rank=lora.rank, seed=lora.seed, train_mlp=lora.train_mlp, train_attn=lora.train_attn,
            train_unembed=lora.train_unembed, user_metadata=metadata, optimizer=req.optimizer_config,
            run_id=model_id)

    job, _ = state.create_model(req.session_id, req.model_seq_id, "CreateModel", create,
                                lambda _: Reply.json(types.CreateModelResponse(model_id=model_id)))
    return _accepted(job, model_id=model_id)


@router.post("/get_info")
async def get_info(request: Request) -> dict[str, Any]:
    state = _state(request)
    req = await parse_body(request, types.GetInfoRequest)
    model = state.model(req.model_id)
    info = (await model.ready()).get_info()
    return info.model_copy(update={"model_id": model.model_id}).model_dump(mode="json", exclude_none=True)


@router.post("/forward_backward")
async def forward_backward(request: Request) -> dict[str, Any]:
    """``forward`` and ``forward_backward`` (``forward_only``): protobuf in, protobuf result."""
    state = _state(request)
    if wire.PROTOBUF not in request.headers.get("content-type", ""):
        raise UnsupportedMediaType(f"forward_backward takes a protobuf ForwardBackwardRequest "
                                   f"(Content-Type: {wire.PROTOBUF})")
    body = await request.body()
    if request.headers.get("content-encoding", "").lower() == "zstd":
        body = await state.run_blocking(_unzstd, body, state.config.max_request_bytes)
    call = await state.run_blocking(wire.decode_forward_backward, body)

    def start(tc: TrainingClient) -> object:
        if call.error is not None or call.data is None:
            raise call.error or BadRequest("forward_backward without data")
        method = tc.forward if call.forward_only else tc.forward_backward
        return method(call.data, call.loss_fn, call.loss_fn_config)

    job = state.submit(call.model_id, call.seq_id, "Forward" if call.forward_only else "ForwardBackward", start,
                       lambda out: Reply.proto(wire.encode_forward_backward_output(out)))
    return _accepted(job, model_id=call.model_id)


def _unzstd(body: bytes, limit: int) -> bytes:
    try:
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)).read(limit + 1)
    except zstandard.ZstdError as exc:
        raise BadRequest(f"malformed zstd body: {exc}") from exc
    if len(data) > limit:
        raise PayloadTooLarge(f"the decompressed body exceeds the server's limit of {limit} bytes")
    return data


@router.post("/optim_step")
async def optim_step(request: Request) -> dict[str, Any]:
    req = await parse_body(request, types.OptimStepRequest)
    job = _state(request).submit(req.model_id, req.seq_id, "OptimStep", lambda tc: tc.optim_step(req.optim_params),
                                 Reply.json)
    return _accepted(job, model_id=req.model_id)


@router.post("/save_weights")
async def save_weights(request: Request) -> dict[str, Any]:
    """``save_state``: adapter and optimizer state; the result's path is ``tinker://...``."""
    req = await parse_body(request, types.SaveWeightsRequest)
    name = req.path or f"checkpoint-{uuid.uuid4().hex[:8]}"
    job = _state(request).submit(
        req.model_id, req.seq_id, "SaveWeights",
        lambda tc: tc.save_state(name, ttl_seconds=req.ttl_seconds, overwrite=req.overwrite,
                                 user_metadata=req.user_metadata),
        lambda out: Reply.json(types.SaveWeightsResponse(path=paths.to_wire(out.path), type="save_weights")))
    return _accepted(job, model_id=req.model_id)


@router.post("/save_weights_for_sampler")
async def save_weights_for_sampler(request: Request) -> dict[str, Any]:
    """Named sampler weights (a ``tinker://`` path), or, without a name, an ephemeral sampler on a snapshot."""
    state = _state(request)
    req = await parse_body(request, types.SaveWeightsForSamplerRequest)
    if req.path is not None:
        job = state.submit(
            req.model_id, req.seq_id, "SaveWeightsForSampler",
            lambda tc: tc.save_weights_for_sampler(req.path, ttl_seconds=req.ttl_seconds,
                                                   user_metadata=req.user_metadata),
            lambda out: Reply.json(types.SaveWeightsForSamplerResponseInternal(path=paths.to_wire(out.path))))
        return _accepted(job, model_id=req.model_id)
    session_id, seq = state.model(req.model_id).session_id, req.sampling_session_seq_id

    def snapshot(tc: TrainingClient) -> object:
        if seq is None:
            raise BadRequest("save_weights_for_sampler needs a path or a sampling_session_seq_id")
        # "inflight" saves get a snapshot too
        return tc.save_weights_and_get_sampling_client(kind=req.kind, sampler_id=f"{session_id}:sample:{seq}")

    def register(sampling_client: SamplingClient) -> Reply:
        assert seq is not None  # snapshot refused the request otherwise
        sampler_id = state.add_sampler(session_id, seq, sampling_client, sampling_client.get_base_model(), None)
        return Reply.json(types.SaveWeightsForSamplerResponseInternal(sampling_session_id=sampler_id))

    job = state.submit(req.model_id, req.seq_id, "SaveWeightsForSampler", snapshot, register)
    return _accepted(job, model_id=req.model_id)


@router.post("/save_weights_external")
async def save_weights_external(request: Request) -> dict[str, Any]:
    """A Hugging Face export (``tinker://<run>/external_weights/<name>``), downloadable through
    ``get_external_weights_urls``."""
    req = await parse_body(request, types.SaveWeightsExternalRequest)
    job = _state(request).submit(
        req.model_id, req.seq_id, "SaveWeightsExternal",
        lambda tc: tc.save_weights_external(req.path, ttl_seconds=req.ttl_seconds,
                                            age_encryption_recipients=req.age_encryption_recipients),
        lambda out: Reply.json(types.SaveWeightsExternalResponseInternal(path=paths.to_wire(out.path))))
    return _accepted(job, model_id=req.model_id)


@router.post("/load_weights")
async def load_weights(request: Request) -> dict[str, Any]:
    """Load into an existing model (``load_state*``, legacy), or create a model from a checkpoint."""
    state = _state(request)
    req = await parse_body(request, types.LoadWeightsRequest)
    if req.model_id is not None:
        def load(tc: TrainingClient) -> object:
            local = paths.to_local(req.path)
            return tc.load_state_with_optimizer(local) if req.optimizer else tc.load_state(local)
        job = state.submit(req.model_id, req.seq_id, "LoadWeights", load, lambda _: Reply.json(
            types.LoadWeightsResponse(path=req.path, model_id=req.model_id, type="load_weights")))
        return _accepted(job, model_id=req.model_id)
    if req.session_id is None or req.model_seq_id is None:
        raise BadRequest("load_weights needs model_id and seq_id (load into a model) or session_id and "
                         "model_seq_id (create a model from the checkpoint)")
    model_id = model_id_of(req.session_id, req.model_seq_id)
    backend = state.session(req.session_id).backend

    def create(_: None) -> object:
        local = paths.to_local(req.path)
        metadata = _metadata(req.user_metadata)
        if req.optimizer:
            return backend.create_training_client_from_state_with_optimizer(
                local, base_model=req.base_model, user_metadata=metadata, run_id=model_id)
        return backend.create_training_client_from_state(local, base_model=req.base_model, user_metadata=metadata,
                                                         optimizer=req.optimizer_config, run_id=model_id)

    job, _ = state.create_model(req.session_id, req.model_seq_id, "LoadWeights", create, lambda _: Reply.json(
        types.LoadWeightsResponse(path=req.path, model_id=model_id, type="load_weights")))
    return _accepted(job, model_id=model_id)


# --- sampling ---------------------------------------------------------------------------------

@router.post("/create_sampling_session")
async def create_sampling_session(request: Request) -> dict[str, Any]:
    """A sampler on saved weights (``model_path``) or on the base model; answered directly."""
    state = _state(request)
    req = await parse_body(request, types.CreateSamplingSessionRequest)
    session = state.session(req.session_id)
    sampler_id = session.samplers.get(req.sampling_session_seq_id)
    if sampler_id is None:
        if req.model_path is None and req.base_model is None:
            raise BadRequest("create_sampling_session needs model_path or base_model")
        local = paths.to_local(req.model_path) if req.model_path is not None else None
        sampler = f"{req.session_id}:sample:{req.sampling_session_seq_id}"
        client = await state.run_blocking(lambda: session.backend.create_sampling_client(
            model_path=local, base_model=req.base_model, sampler_id=sampler))
        sampler_id = state.add_sampler(req.session_id, req.sampling_session_seq_id, client, client.get_base_model(),
                                       req.model_path)
    return {"type": "create_sampling_session", "sampling_session_id": sampler_id}


@router.post("/asample")
async def asample(request: Request) -> dict[str, Any]:
    """Sampling goes to the backend at once (no ordering), so concurrent requests are decoded together."""
    state = _state(request)
    req = await parse_body(request, types.SampleRequest)
    if req.sampling_session_id is None:
        raise BadRequest("asample needs a sampling_session_id (from create_sampling_session)")
    sampler = state.sampler(req.sampling_session_id)
    limits = state.config
    if not 1 <= req.num_samples <= limits.max_samples_per_request:
        raise BadRequest(f"num_samples must be in 1..{limits.max_samples_per_request} (max_samples_per_request), "
                         f"got {req.num_samples}")
    last_n = req.prompt_logprobs_last_n
    if last_n is not None and last_n < 0:
        raise BadRequest(f"prompt_logprobs_last_n must be >= 0, got {last_n}")
    prompt_len = req.prompt.length
    new_tokens = req.sampling_params.max_tokens
    if new_tokens is None:  # the backend fills the context
        context = getattr(getattr(sampler.client, "base", None), "max_context", None)  # the local backend's
        new_tokens = max(0, context - prompt_len) if context else 0
    if req.num_samples * (prompt_len + max(new_tokens, 0)) > limits.max_sample_tokens:
        raise BadRequest(f"num_samples x (prompt + max_tokens) = {req.num_samples} x {prompt_len + new_tokens} "
                         f"exceeds {limits.max_sample_tokens} tokens per request (max_sample_tokens)")
    target = None if req.target_prompt_logprobs is None else types.TensorData(
        **req.target_prompt_logprobs.model_dump())
    widths = {"topk_prompt_logprobs": req.topk_prompt_logprobs, "prompt_alt_tokens_k": req.prompt_alt_tokens_k,
              "target_prompt_logprobs": (target.shape or [0, 0])[-1] if target is not None else 0}
    for name, width in widths.items():  # cost ~ prompt x width, bounded like the tokens of a request
        if prompt_len * max(width, 0) > limits.max_sample_tokens:
            raise BadRequest(f"len(prompt) x {name} = {prompt_len} x {width} exceeds {limits.max_sample_tokens} "
                             "(max_sample_tokens)")
    if req.num_samples * max(new_tokens, 0) * max(req.topk_sample_logprobs, 0) > limits.max_sample_tokens:
        raise BadRequest(f"num_samples x max_tokens x topk_sample_logprobs exceeds {limits.max_sample_tokens} "
                         "(max_sample_tokens)")
    record = bool(req.record_stability_info)
    sequence_ids: list[str] = []

    def start() -> object:
        return sampler.client.sample(
            req.prompt, req.num_samples, req.sampling_params, include_prompt_logprobs=bool(req.prompt_logprobs),
            topk_prompt_logprobs=req.topk_prompt_logprobs, topk_sample_logprobs=req.topk_sample_logprobs,
            target_prompt_logprobs=target, prompt_alt_tokens_k=req.prompt_alt_tokens_k,
            prompt_logprobs_last_n=last_n, sequence_ids=sequence_ids, record_stability_info=record)

    def finish(resp: types.SampleResponse) -> Reply:
        return Reply.proto(wire.encode_sample_response(resp))

    job = state.sample(sampler, start, finish)  # start() runs in a task that begins after this handler returns
    sequence_ids += [f"{job.request_id}:{i}" for i in range(req.num_samples)]
    return _accepted(job, sample_sequence_ids=sequence_ids)
