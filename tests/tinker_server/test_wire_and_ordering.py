"""Unit tests of the pieces: protobuf conversion (against the SDK's own codecs), checkpoint paths,
per-model seq-id ordering, and the command line."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from tinker import types
from tinker.proto.request_conv import forward_backward_request_to_proto
from tinker.proto.response_conv import deserialize_forward_backward_output, deserialize_sample_response

from cookbook.backend.tinker_server import ServerConfig, main, parse_args, paths, wire
from cookbook.backend.tinker_server.errors import BadRequest
from cookbook.backend.tinker_server.guard import key_allowed
from cookbook.backend.tinker_server.jobs import Reply
from cookbook.backend.tinker_server.state import ServerState
from cookbook.errors import ConfigError


def test_forward_backward_requests_decode_to_what_the_sdk_encoded():
    dense = types.Datum(model_input=types.ModelInput.from_ints([5, 6, 7]),
                        loss_fn_inputs={"target_tokens": [6, 7, 8], "weights": [1.0, 0.5, 0.0],
                                        "advantages": np.array([0.25, -1.0, 2.0], dtype=np.float32)})
    sparse_targets = torch.zeros(3, 6, dtype=torch.int64)
    sparse_targets[0, 1], sparse_targets[2, 4] = 9, 11
    two_d = types.Datum(model_input=types.ModelInput(chunks=[types.EncodedTextChunk(tokens=[1, 2]),
                                                             types.EncodedTextChunk(tokens=[3])]),
                        loss_fn_inputs={"target_tokens": sparse_targets, "weights": torch.ones(3, 6)})
    assert two_d.loss_fn_inputs["target_tokens"].sparse_crow_indices is not None  # the SDK sends it as CSR
    request = types.ForwardBackwardRequest(
        forward_backward_input=types.ForwardBackwardInput(data=[dense, two_d], loss_fn="ppo",
                                                          loss_fn_config={"clip_low_threshold": 0.7, "mode": "x"}),
        model_id="s:train:0", seq_id=3)
    message = forward_backward_request_to_proto(request)
    message.forward_only = True
    call = wire.decode_forward_backward(message.SerializeToString())
    assert (call.model_id, call.seq_id, call.loss_fn, call.forward_only) == ("s:train:0", 3, "ppo", True)
    assert call.loss_fn_config == {"clip_low_threshold": pytest.approx(0.7), "mode": "x"} and call.error is None
    for got, sent in zip(call.data, [dense, two_d]):
        assert got.model_input.to_ints() == sent.model_input.to_ints()
        assert got.loss_fn_inputs.keys() == sent.loss_fn_inputs.keys()
        for key, value in sent.loss_fn_inputs.items():
            assert got.loss_fn_inputs[key].dtype == value.dtype
            np.testing.assert_array_equal(got.loss_fn_inputs[key].to_numpy(), value.to_numpy())


def test_undecodable_datums_fail_the_request_not_the_body():
    message = forward_backward_request_to_proto(types.ForwardBackwardRequest(
        forward_backward_input=types.ForwardBackwardInput(
            data=[types.Datum(model_input=types.ModelInput.from_ints([1]), loss_fn_inputs={"weights": [1.0]})],
            loss_fn="cross_entropy"), model_id="m", seq_id=1))
    message.data[0].loss_fn_inputs["weights"].shape[:] = [7]  # 1 value cannot fill [7]
    call = wire.decode_forward_backward(message.SerializeToString())
    assert call.data is None and "do not fill shape" in str(call.error)
    message.data[0].model_input[0].image.data = b"png"
    assert "image" in str(wire.decode_forward_backward(message.SerializeToString()).error)
    with pytest.raises(BadRequest, match="malformed protobuf"):
        wire.decode_forward_backward(b"\x0a\xff")


def test_forward_backward_outputs_encode_to_what_the_sdk_decodes():
    def record(logprobs, ids):
        return {"logprobs": types.TensorData.from_numpy(logprobs), "ids": types.TensorData.from_numpy(ids)}
    outputs = [record(np.arange(n, dtype=np.float32) - 3.5, np.arange(n, dtype=np.int64)) for n in (3, 1, 4)]
    outputs.append(record(np.ones((2, 3), dtype=np.float32), np.array([4, 5], dtype=np.int64)))  # [N, K]: a new run
    out = types.ForwardBackwardOutput(loss_fn_output_type="ArrayRecord", loss_fn_outputs=outputs,
                                      metrics={"loss:sum": 12.5, "clipped:mean": 0.25})
    back = deserialize_forward_backward_output(wire.encode_forward_backward_output(out))
    assert back.metrics == out.metrics and back.loss_fn_output_type == "ArrayRecord"
    assert len(back.loss_fn_outputs) == 4
    for got, sent in zip(back.loss_fn_outputs, outputs):
        assert got.keys() == sent.keys()
        for key in sent:
            assert got[key].shape == sent[key].shape and got[key].dtype == sent[key].dtype
            np.testing.assert_array_equal(got[key].to_numpy(), sent[key].to_numpy())


def test_sample_responses_encode_to_what_the_sdk_decodes():
    seqs = [types.SampledSequence(stop_reason="stop", sequence_id="a", tokens_np=np.array([3, 4], dtype=np.int32),
                                  logprobs_np=np.array([-0.5, -1.5], dtype=np.float32)),
            types.SampledSequence(stop_reason="length", sequence_id="b", tokens_np=np.array([], dtype=np.int32),
                                  logprobs_np=np.array([], dtype=np.float32))]
    resp = types.SampleResponse(sequences=seqs, prompt_logprobs_np=np.array([np.nan, -2.0, -3.0], dtype=np.float32),
                                _topk_prompt_logprobs_list=[None, [(1, -0.1), (2, -2.5)], [(7, -0.2)]])
    back = deserialize_sample_response(wire.encode_sample_response(resp))
    assert [s.stop_reason for s in back.sequences] == ["stop", "length"]
    assert back.sequences[0].tokens == [3, 4] and back.sequences[0].logprobs == [-0.5, -1.5]
    assert back.sequences[1].tokens == []
    assert back.prompt_logprobs == [None, -2.0, -3.0]
    assert back.topk_prompt_logprobs == [None, [(1, pytest.approx(-0.1)), (2, -2.5)], [(7, pytest.approx(-0.2))]]


def test_checkpoint_paths_swap_scheme_and_refuse_anything_else():
    local = "local://20240101-000000-abcdef_train_0/weights/step_000004"
    assert paths.to_wire(local) == "tinker://20240101-000000-abcdef_train_0/weights/step_000004"
    assert paths.to_local(paths.to_wire(local)) == local and paths.to_local(local) == local
    for bad in ("/etc/passwd", "tinker://run/weights", "tinker://../weights/x", "tinker://run/other/x",
                "tinker://run/weights/a/b", "tinker://run/weights/..", "file:///x", ""):
        with pytest.raises(paths.CheckpointPathError):
            paths.to_local(bad)


def test_api_keys():
    assert key_allowed("tml-anything", ()) and not key_allowed("sk-x", ()) and not key_allowed(None, ())
    assert key_allowed("k1", ("k1", "k2")) and not key_allowed("tml-x", ("k1",))


class FakeTrainingClient:
    def __init__(self) -> None:
        self.calls: list[int] = []


class _NoBackend:
    """A service whose sessions hold nothing (the ordering test drives fake training clients)."""

    def new_session(self, *args, **kwargs):
        return None


def test_requests_run_by_seq_id_whatever_order_they_arrive_in():
    async def scenario() -> tuple[list[int], list]:
        state = ServerState(service=_NoBackend(), config=ServerConfig())
        session_id = state.create_session()
        client = FakeTrainingClient()
        job, model_id = state.create_model(session_id, 0, "CreateModel", lambda _: client, lambda _: Reply.json({}))

        def op(n):
            def start(tc):
                tc.calls.append(n)
                return n
            return start
        jobs = {n: state.submit(model_id, n, "Op", op(n), lambda v: Reply.json({"n": v})) for n in (3, 5, 1, 4)}
        await asyncio.sleep(0.2)
        early = list(client.calls)  # 2 has not arrived: only 1 may run
        jobs[2] = state.submit(model_id, 2, "Op", op(2), lambda v: Reply.json({"n": v}))
        assert state.submit(model_id, 4, "Op", op(99), lambda v: Reply.json({})) is jobs[4]  # re-sent: same job
        replies = [await state.jobs.wait(jobs[n], 5) for n in sorted(jobs)]
        await state.close()
        return early, client.calls, replies

    early, calls, replies = asyncio.run(scenario())
    assert early == [1] and calls == [1, 2, 3, 4, 5]
    assert [r.body for r in replies] == [b'{"n": %d}' % n for n in range(1, 6)]


def test_command_line():
    config = parse_args(["port=0", "allowed_keys=a,b", "--max-request-mb", "2", "long_poll_s=5"])
    assert config.allowed_keys == ("a", "b") and config.max_request_bytes == 2 << 20 and config.long_poll_s == 5
    assert parse_args([]) == ServerConfig()
    with pytest.raises(ConfigError, match="allowed_keys"):
        parse_args(["host=0.0.0.0"])
    assert parse_args(["host=0.0.0.0", "allowed_keys=k"]).host == "0.0.0.0"
    assert main(["host=0.0.0.0"]) == 2 and main(["--help"]) == 0 and main(["no_such_option=1"]) == 2
