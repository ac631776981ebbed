"""Bad requests get clean 4xx JSON errors and the server keeps serving (acceptance 4)."""

from __future__ import annotations

import httpx
import pytest
import tinker
from tinker.proto import tinker_public_pb2 as pb
from tinker_flows import API_KEY, sdk_service

from cookbook.backend.tinker_server import ServerConfig, ServerThread

LIMIT = 1 << 20


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    config = ServerConfig(port=0, checkpoint_root=str(tmp_path_factory.mktemp("ckpt")), max_request_bytes=LIMIT,
                          long_poll_s=0.5, log_level="warning")
    with ServerThread(config) as running:
        yield running


@pytest.fixture(scope="module")
def http(small_server):
    with httpx.Client(base_url=small_server.url + "/api/v1", headers={"X-API-Key": API_KEY}, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def session_id(http):
    return http.post("/create_session", json={"tags": [], "user_metadata": {}, "sdk_version": "test"}).json()[
        "session_id"]


def check_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["category"] == "user" and all(f in body["error"] for f in fragments), body


def still_serving(http) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.post("/create_session", json={"tags": [], "user_metadata": {}, "sdk_version": "t"}).status_code == 200


def fwdbwd(http, message: bytes | pb.ForwardBackwardRequest, **headers) -> httpx.Response:
    body = message if isinstance(message, bytes) else message.SerializeToString()
    return http.post("/forward_backward", content=body,
                     headers={"Content-Type": "application/x-protobuf", **headers})


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "sk-not-a-tinker-key"}])
def test_missing_or_non_tinker_keys_get_401(small_server, http, headers):
    """Without allowed_keys (a loopback server) any key starting with tml- passes, nothing else."""
    response = httpx.post(small_server.url + "/api/v1/create_session", headers=headers,
                          json={"tags": [], "user_metadata": {}, "sdk_version": "t"})
    check_error(response, 401, "API key")
    still_serving(http)


def test_only_allowed_keys_pass_when_configured(tmp_path):
    config = ServerConfig(port=0, allowed_keys=("tml-alice", "bob-key"), checkpoint_root=str(tmp_path),
                          log_level="warning")
    with ServerThread(config) as keyed:
        url = keyed.url + "/api/v1/create_session"
        body = {"tags": [], "user_metadata": {}, "sdk_version": "t"}
        check_error(httpx.post(url, json=body, headers={"X-API-Key": "tml-mallory"}), 401, "API key")
        assert httpx.post(url, json=body, headers={"X-API-Key": "bob-key"}).status_code == 200
        assert httpx.get(keyed.url + "/api/v1/healthz").status_code == 200  # health needs no key
        with pytest.raises(tinker.AuthenticationError):
            tinker.ServiceClient(base_url=keyed.url, api_key="tml-mallory").create_lora_training_client(
                base_model="tiny", rank=4).result()


def test_malformed_bodies_get_400(http, session_id):
    check_error(http.post("/create_session", content=b"{not json", headers={"Content-Type": "application/json"}),
                400, "malformed JSON")
    check_error(http.post("/create_session", json=[1, 2]), 400, "must be an object")
    check_error(http.post("/create_model", json={"session_id": session_id}), 400, "invalid CreateModelRequest",
                "model_seq_id")
    check_error(http.post("/optim_step", json={"model_id": "x", "seq_id": 1, "adam_params": {"learning_rate": "hi"}}),
                400, "invalid OptimStepRequest")
    check_error(http.post("/retrieve_future", json={"request_id": 5}), 400, "invalid FutureRetrieveRequest")
    check_error(fwdbwd(http, b"\xff\xff\xff\xff garbage"), 400, "malformed protobuf")
    check_error(fwdbwd(http, pb.ForwardBackwardRequest(seq_id=1)), 400, "no model_id")
    check_error(fwdbwd(http, b"\x28\x00", **{"Content-Encoding": "zstd"}), 400, "malformed zstd")
    check_error(http.post("/forward_backward", json={"model_id": "x"}), 415, "protobuf")
    check_error(http.post("/asample", json={"prompt": {"chunks": []}, "sampling_params": {}}), 400,
                "sampling_session_id")
    check_error(http.post("/no_such_endpoint", json={}), 404, "Not Found")
    check_error(http.get("/create_session"), 405, "Method Not Allowed")
    still_serving(http)


def test_unknown_ids_get_404(http, session_id):
    missing = f"{session_id}:train:99"
    check_error(http.post("/optim_step", json={"model_id": missing, "seq_id": 1, "adam_params": {}}), 404,
                "unknown model_id")
    check_error(fwdbwd(http, pb.ForwardBackwardRequest(model_id=missing, seq_id=1, loss_fn="cross_entropy")), 404,
                "unknown model_id")
    check_error(http.post("/get_info", json={"model_id": missing}), 404, "unknown model_id")
    check_error(http.post("/create_model", json={"session_id": "nope", "model_seq_id": 0, "base_model": "tiny"}), 404,
                "unknown session_id")
    check_error(http.post("/session_heartbeat", json={"session_id": "nope"}), 404, "unknown session_id")
    check_error(http.post("/asample", json={"sampling_session_id": f"{session_id}:sample:7", "prompt": {"chunks": []},
                                            "sampling_params": {}}), 404, "unknown sampling_session_id")
    check_error(http.get(f"/samplers/{session_id}:sample:7"), 404, "no sampler")
    check_error(http.post("/retrieve_future", json={"request_id": "0" * 32}), 404, "unknown request_id")
    check_error(http.post("/create_sampling_session", json={"session_id": session_id, "sampling_session_seq_id": 0,
                                                            "model_path": "tinker://run/sampler_weights/none"}),
                404, "CheckpointNotFoundError")
    check_error(http.post("/create_sampling_session", json={"session_id": session_id, "sampling_session_seq_id": 0,
                                                            "model_path": "tinker://../../etc/passwd"}),
                400, "bad checkpoint path")
    still_serving(http)


def test_oversized_requests_get_413(http):
    check_error(http.post("/create_session", content=b" " * (LIMIT + 1), headers={"Content-Type": "application/json"}),
                413, "exceeds")

    def stream():  # no Content-Length: counted while reading
        for _ in range(LIMIT // 65536 + 2):
            yield b" " * 65536
    check_error(http.post("/telemetry", content=stream()), 413, "exceeds")
    still_serving(http)


def test_ended_sessions_and_finished_futures(http):
    sid = http.post("/create_session", json={"tags": [], "user_metadata": {}, "sdk_version": "t"}).json()["session_id"]
    created = http.post("/create_model", json={"session_id": sid, "model_seq_id": 0, "base_model": "tiny",
                                               "lora_config": {"rank": 4}}).json()
    again = http.post("/create_model", json={"session_id": sid, "model_seq_id": 0, "base_model": "tiny",
                                             "lora_config": {"rank": 4}}).json()
    assert again == created  # a re-sent request gets the same future
    result = http.post("/retrieve_future", json={"request_id": created["request_id"]})
    while result.json().get("type") == "try_again":
        result = http.post("/retrieve_future", json={"request_id": created["request_id"]})
    assert result.json() == {"model_id": f"{sid}:train:0", "type": "create_model"}
    # a request that runs ahead of its predecessors waits; retrieve_future answers try_again meanwhile
    ahead = http.post("/optim_step", json={"model_id": f"{sid}:train:0", "seq_id": 2, "adam_params": {}}).json()
    assert http.post("/retrieve_future", json={"request_id": ahead["request_id"]}).json()["type"] == "try_again"
    check_error(http.post("/optim_step", json={"model_id": f"{sid}:train:0", "seq_id": 10**9, "adam_params": {}}),
                400, "out of range")
    assert http.post(f"/sessions/{sid}/finish", json={"reason": {"type": "success"}}).status_code == 200
    check_error(http.post("/session_heartbeat", json={"session_id": sid}), 410, "ended")
    assert http.post(f"/sessions/{sid}/finish", json={"reason": {"type": "success"}}).status_code == 200  # again: ok
    failed = http.post("/retrieve_future", json={"request_id": ahead["request_id"]}).json()
    assert failed["category"] == "user" and "ended" in failed["error"]  # never-run requests fail when it ends
    check_error(http.post("/get_info", json={"model_id": f"{sid}:train:0"}), 404, "unknown model_id")
    still_serving(http)


def test_sdk_users_get_typed_errors(small_server):
    service = sdk_service(small_server)
    with pytest.raises(tinker.RequestFailedError, match="ModelLoadError") as info:
        service.create_lora_training_client(base_model="/no/such/model", rank=4).result()
    assert info.value.category == "user"
    tc = service.create_lora_training_client(base_model="tiny", rank=4).result()
    datum = tinker.types.Datum(model_input=tinker.types.ModelInput.from_ints([1, 2, 3]), loss_fn_inputs={})
    with pytest.raises(tinker.RequestFailedError, match="target_tokens") as info:
        tc.forward_backward([datum], "cross_entropy").result()
    assert info.value.category == "user"
    service.close("success").result()
