"""The protobuf bodies of the Tinker protocol, to and from ``tinker.types``.

``forward_backward`` requests arrive as ``ForwardBackwardRequest`` protobuf; ``ForwardBackwardOutput``
and ``SampleResponse`` results leave as protobuf (the SDK 0.38 accepts nothing else for these two).
The schema is the SDK's own generated module (``tinker.proto.tinker_public_pb2``); decoding is the
mirror of the SDK's ``proto/request_conv.py`` and encoding of its ``proto/response_conv.py``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from google.protobuf.message import DecodeError
from tinker import types
from tinker.proto import tinker_public_pb2 as pb

from .errors import BadRequest, Unsupported

PROTOBUF = "application/x-protobuf"

# proto dtype -> (numpy dtype of the bytes, public TensorDtype)
PublicDtype = Literal["float32", "int64"]
_DTYPES: dict[int, tuple[np.dtype, PublicDtype]] = {
    pb.DTYPE_FLOAT32: (np.dtype(np.float32), "float32"),
    pb.DTYPE_INT64: (np.dtype(np.int64), "int64"),
    pb.DTYPE_INT32: (np.dtype(np.int32), "int64"),
    pb.DTYPE_BFLOAT16: (np.dtype(np.uint16), "float32"),
}
_STOP_REASONS = {"stop": pb.STOP_REASON_STOP, "length": pb.STOP_REASON_LENGTH}
_TOPK_PAD_LOGPROB = -99999.0  # the SDK's TopkLogprobs padding cell is (0, -99999.0)


class WireError(Unsupported, ValueError):
    """A datum the server cannot turn into ``tinker.types`` (answered as the request's user error)."""


@dataclass(frozen=True)
class ForwardBackwardCall:
    """A decoded ``ForwardBackwardRequest``. ``data`` is None when ``error`` says why it could not be read."""

    model_id: str
    seq_id: int
    loss_fn: str
    loss_fn_config: dict[str, float | str] | None
    forward_only: bool
    data: list[types.Datum] | None
    error: Exception | None = None


def decode_forward_backward(body: bytes) -> ForwardBackwardCall:
    """Parse a protobuf ``ForwardBackwardRequest``.

    Raises :class:`BadRequest` when the body is not one (or names no model / seq id); a datum that
    cannot be converted is reported in ``error`` instead, so the request still takes its place in
    the model's sequence and fails there.
    """
    msg = pb.ForwardBackwardRequest()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"malformed protobuf ForwardBackwardRequest: {exc}") from exc
    if not msg.model_id:
        raise BadRequest("ForwardBackwardRequest has no model_id (is the body a protobuf ForwardBackwardRequest?)")
    if msg.seq_id <= 0:
        raise BadRequest(f"ForwardBackwardRequest needs a seq_id >= 1, got {msg.seq_id}")
    config: dict[str, float | str] | None = None
    if msg.loss_fn_config_v2:
        config = {k: (v.text if v.WhichOneof("value") == "text" else v.number)
                  for k, v in msg.loss_fn_config_v2.items()}
    elif msg.loss_fn_config:
        config = dict(msg.loss_fn_config)
    data: list[types.Datum] | None = None
    error: Exception | None = None
    try:
        data = [_datum(i, d) for i, d in enumerate(msg.data)]
    except WireError as exc:
        error = exc
    return ForwardBackwardCall(msg.model_id, msg.seq_id, msg.loss_fn, config, msg.forward_only, data, error)


def _datum(index: int, msg: pb.Datum) -> types.Datum:
    chunks: list[types.ModelInputChunk] = []
    for chunk in msg.model_input:
        kind = chunk.WhichOneof("chunk")
        if kind != "encoded_text":
            raise WireError(f"data[{index}]: {kind or 'empty'} model-input chunks are not supported by this server "
                            "(only token chunks)")
        raw = chunk.encoded_text.tokens
        if len(raw) % 4:
            raise WireError(f"data[{index}]: token bytes are not int32 ({len(raw)} bytes)")
        chunks.append(types.EncodedTextChunk(tokens=np.frombuffer(raw, dtype=np.int32).tolist()))
    inputs = {name: _tensor(f"data[{index}].loss_fn_inputs[{name!r}]", t) for name, t in msg.loss_fn_inputs.items()}
    datum = types.Datum(model_input=types.ModelInput(chunks=chunks), loss_fn_inputs=inputs)
    if not msg.model_input_spans and not msg.loss_fn_input_spans:
        return datum
    return dataclasses.replace(datum, model_input_spans=_spans(index, msg.model_input_spans),
                               loss_fn_input_spans=_spans(index, msg.loss_fn_input_spans))


Span = types.PromptProvenanceSpan | types.SampledProvenanceSpan


def _spans(index: int, spans: Sequence[pb.ProvenanceSpan]) -> list[Span]:
    """A datum's provenance (``Datum.with_provenance``): prompt and sampled runs naming sequence ids."""
    out: list[Span] = []
    for span in spans:
        kind = span.WhichOneof("span")
        if kind not in ("prompt_tokens", "sampled_tokens"):
            raise WireError(f"data[{index}]: a provenance span names neither prompt nor sampled tokens")
        run = getattr(span, kind)
        cls = types.SampledProvenanceSpan if kind == "sampled_tokens" else types.PromptProvenanceSpan
        try:
            out.append(cls(sequence_id=run.sequence_id, offset=int(run.offset), length=int(run.length)))
        except ValueError as exc:
            raise WireError(f"data[{index}]: bad provenance span: {exc}") from None
    return out


def _values(what: str, raw: bytes, dtype: int) -> tuple[np.ndarray, PublicDtype]:
    if dtype not in _DTYPES:
        raise WireError(f"{what}: unsupported dtype {dtype}")
    np_dtype, public = _DTYPES[dtype]
    if len(raw) % np_dtype.itemsize:
        raise WireError(f"{what}: {len(raw)} bytes is not a whole number of {np_dtype.name} values")
    values = np.frombuffer(raw, dtype=np_dtype)
    if dtype == pb.DTYPE_BFLOAT16:  # bf16 is the top half of a float32
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float32 if public == "float32" else np.int64), public


def _tensor(what: str, msg: pb.Tensor) -> types.TensorData:
    shape = [int(s) for s in msg.shape]
    if any(s < 0 for s in shape):
        raise WireError(f"{what}: negative dimension in shape {shape}")
    if msg.WhichOneof("encoding") != "sparse_csr":
        values, dtype = _values(what, msg.dense, msg.dtype)
        if shape and math.prod(shape) != values.size:
            raise WireError(f"{what}: {values.size} values do not fill shape {shape}")
        return types.TensorData(data=values, dtype=dtype, shape=shape or [values.size])
    values, dtype = _values(what, msg.sparse_csr.values, msg.dtype)
    crow = _indices(what, msg.sparse_csr.crow_indices)
    col = _indices(what, msg.sparse_csr.col_indices)
    if len(shape) != 2:
        raise WireError(f"{what}: a sparse CSR tensor needs a 2-D shape, got {shape}")
    rows, cols = shape
    if (len(crow) != rows + 1 or crow[0] != 0 or crow[-1] != values.size or col.size != values.size
            or np.any(np.diff(crow) < 0) or np.any(col < 0) or np.any(col >= cols)):
        raise WireError(f"{what}: inconsistent sparse CSR indices for shape {shape}")
    return types.TensorData(data=values, dtype=dtype, shape=shape, sparse_crow_indices=crow.tolist(),
                            sparse_col_indices=col.tolist())


def _indices(what: str, raw: bytes) -> np.ndarray:
    if len(raw) % 8:
        raise WireError(f"{what}: sparse indices are not int64")
    return np.frombuffer(raw, dtype=np.int64)


# --- results ------------------------------------------------------------------------------

def encode_forward_backward_output(out: types.ForwardBackwardOutput) -> bytes:
    """``ForwardBackwardOutput`` as protobuf: one ``ArrayRecord`` per run of datums with the same fields."""
    msg = pb.ForwardBackwardOutput(loss_fn_output_type=out.loss_fn_output_type or "ArrayRecord")
    for key, value in out.metrics.items():
        msg.metrics[key] = float(value)
    rows = [{name: _dense(td) for name, td in record.items()} for record in out.loss_fn_outputs]
    start = 0
    while start < len(rows):
        sig = _signature(rows[start])
        end = start + 1
        while end < len(rows) and _signature(rows[end]) == sig:
            end += 1
        group = rows[start:end]
        record = msg.loss_fn_outputs.add(type_tag=msg.loss_fn_output_type, num_datums=len(group))
        for name in group[0]:
            arrays = [row[name] for row in group]
            field = record.fields[name]
            field.dtype = pb.DTYPE_INT64 if arrays[0].dtype == np.int64 else pb.DTYPE_FLOAT32
            field.trailing_shape.extend(arrays[0].shape[1:])
            field.data = b"".join(a.tobytes() for a in arrays)
            field.offsets = np.cumsum([0] + [a.nbytes for a in arrays], dtype=np.int64).tobytes()
        start = end
    return msg.SerializeToString()


def _dense(td: types.TensorData) -> np.ndarray:
    arr = np.asarray(td.to_numpy())
    arr = arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float32)
    return arr.reshape(1) if arr.ndim == 0 else arr


def _signature(row: dict[str, np.ndarray]) -> tuple:
    return tuple((name, a.dtype.str, a.shape[1:]) for name, a in row.items())


def encode_sample_response(resp: types.SampleResponse) -> bytes:
    """``SampleResponse`` as protobuf (sequence ids are not sent: the SDK stamps them from the submit reply)."""
    msg = pb.SampleResponse(prompt_cache_hit_tokens=int(resp.prompt_cache_hit_tokens or 0))
    for seq in resp.sequences:
        out = msg.sequences.add(stop_reason=_STOP_REASONS[seq.stop_reason])
        tokens = seq.tokens_np if seq.tokens_np is not None else seq.tokens
        out.tokens = np.asarray(tokens, dtype=np.int32).tobytes()
        logprobs = seq.logprobs_np if seq.logprobs_np is not None else seq.logprobs
        if logprobs is not None:
            out.logprobs = np.asarray(logprobs, dtype=np.float32).tobytes()
        if seq.topk_logprobs is not None:
            out.topk_sampled_logprobs.CopyFrom(_topk(seq.topk_logprobs))
    prompt = resp.prompt_logprobs
    if prompt is not None:
        msg.prompt_logprobs = np.array([math.nan if v is None else v for v in prompt], dtype=np.float32).tobytes()
    if resp.topk_prompt_logprobs is not None:
        msg.topk_prompt_logprobs.CopyFrom(_topk(resp.topk_prompt_logprobs))
    if resp.target_prompt_logprobs is not None:
        msg.target_prompt_logprobs.CopyFrom(_tensor_message(resp.target_prompt_logprobs))
    if resp.prompt_alt_tokens is not None:
        msg.prompt_alt_tokens.tokens.CopyFrom(_tensor_message(resp.prompt_alt_tokens.tokens))
        msg.prompt_alt_tokens.logprobs.CopyFrom(_tensor_message(resp.prompt_alt_tokens.logprobs))
    return msg.SerializeToString()


def _topk(rows: Sequence[Sequence[tuple[int, float]] | None]) -> pb.TopkLogprobs:
    k = max((len(r) for r in rows if r), default=0)
    ids = np.zeros((len(rows), k), dtype=np.int32)
    lps = np.full((len(rows), k), _TOPK_PAD_LOGPROB, dtype=np.float32)
    for i, row in enumerate(rows):
        for j, (token, logprob) in enumerate(row or ()):
            ids[i, j], lps[i, j] = token, logprob
    return pb.TopkLogprobs(token_ids=ids.tobytes(), logprobs=lps.tobytes(), k=k, length=len(rows))


def _tensor_message(td: types.TensorData) -> pb.Tensor:
    arr = _dense(td)
    return pb.Tensor(dense=arr.tobytes(), dtype=pb.DTYPE_INT64 if arr.dtype == np.int64 else pb.DTYPE_FLOAT32,
                     shape=list(arr.shape))
