"""Input limits and per-key quotas of ``cookbook serve-tinker``: every hostile request is a 4xx or
a ``user`` failure, answered before anything is allocated, and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest
import tinker
from tinker_flows import API_KEY, sdk_service

from cookbook.backend.tinker_server import ServerConfig, ServerThread

OTHER_KEY = "tml-another-user"
JSON_ENDPOINTS = ["/create_session", "/session_heartbeat", "/retrieve_future", "/create_model", "/get_info",
                  "/optim_step", "/save_weights", "/save_weights_for_sampler", "/save_weights_external",
                  "/load_weights", "/create_sampling_session", "/asample"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    config = ServerConfig(port=0, checkpoint_root=str(tmp_path_factory.mktemp("ckpt")), long_poll_s=0.5,
                          log_level="warning", max_models_per_key=2, max_samplers_per_key=3, max_sessions_per_key=4,
                          max_json_bytes=1 << 20, max_samples_per_request=16, max_sample_tokens=4096,
                          max_training_gib_per_key=0.01)
    with ServerThread(config) as running:
        yield running


def client(server, key: str = API_KEY) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/api/v1", headers={"X-API-Key": key}, timeout=30)


@pytest.fixture(scope="module")
def http(server):
    with client(server) as c:
        yield c


def new_session(http) -> str:
    response = http.post("/create_session", json={"tags": [], "user_metadata": {}, "sdk_version": "t"})
    assert response.status_code == 200, response.text
    return response.json()["session_id"]


def check_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["category"] == "user" and all(f in body["error"] for f in fragments), body


def result_of(http, submitted: httpx.Response) -> dict:
    assert submitted.status_code == 200, submitted.text
    while True:
        reply = http.post("/retrieve_future", json={"request_id": submitted.json()["request_id"]})
        if reply.headers.get("content-type", "").startswith("application/json"):
            body = reply.json()
            if body.get("type") != "try_again":
                return body
        else:
            return {"binary": True}


def still_serving(server) -> None:
    service = sdk_service(server)
    tc = service.create_lora_training_client(base_model="tiny", rank=2).result()
    sampler = tc.save_weights_and_get_sampling_client().result()
    out = sampler.sample(tinker.types.ModelInput.from_ints([72, 105]), 1,
                         tinker.types.SamplingParams(max_tokens=2, temperature=0.0)).result()
    assert len(out.sequences[0].tokens) >= 1
    service.close("success").result()


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS)
def test_deeply_nested_json_is_refused_before_decoding(http, endpoint):
    for body in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000):
        check_error(http.post(endpoint, content=body, headers={"Content-Type": "application/json"}), 400,
                    "nests 1000 levels deep")


def test_json_bodies_over_their_limit_get_413(http):
    big = b'{"tags": [], "pad": "' + b"x" * (1 << 20) + b'"}'
    check_error(http.post("/create_session", content=big, headers={"Content-Type": "application/json"}), 413,
                "max_json_bytes")


def test_seeds_outside_64_bits_are_user_errors(server):
    service = sdk_service(server)
    sampler = service.create_sampling_client(base_model="tiny").result()
    prompt = tinker.types.ModelInput.from_ints([72, 105])
    for seed in (2**70, -(2**70)):
        with pytest.raises(tinker.RequestFailedError, match="seed must be an integer") as info:
            sampler.sample(prompt, 1, tinker.types.SamplingParams(max_tokens=2, seed=seed)).result()
        assert info.value.category == "user"
    assert sampler.sample(prompt, 1, tinker.types.SamplingParams(max_tokens=2, seed=2**64 - 1)).result().sequences
    service.close("success").result()


def test_rank_and_sample_sizes_are_bounded_before_allocation(http):
    sid = new_session(http)
    check_error(http.post("/create_model", json={"session_id": sid, "model_seq_id": 0, "base_model": "tiny",
                                                 "lora_config": {"rank": 10**9}}), 400, "max_lora_rank")
    # within the server's bound but wider than the model: the backend refuses it as a user error
    failed = result_of(http, http.post("/create_model", json={"session_id": sid, "model_seq_id": 1,
                                                              "base_model": "tiny", "lora_config": {"rank": 200}}))
    assert failed["category"] == "user" and "narrowest adapted layer" in failed["error"]
    sampler = http.post("/create_sampling_session", json={"session_id": sid, "sampling_session_seq_id": 0,
                                                          "base_model": "tiny"}).json()["sampling_session_id"]
    prompt = {"chunks": [{"tokens": [72, 105], "type": "encoded_text"}]}

    def asample(**fields):
        body = {"sampling_session_id": sampler, "prompt": prompt, "num_samples": 1,
                "sampling_params": {"max_tokens": 2}, **fields}
        return http.post("/asample", json=body)
    check_error(asample(num_samples=10**6), 400, "max_samples_per_request")
    check_error(asample(num_samples=0), 400, "num_samples")
    check_error(asample(num_samples=16, sampling_params={"max_tokens": 1000}), 400, "max_sample_tokens")
    check_error(asample(num_samples=16, sampling_params={}), 400, "max_sample_tokens")  # fills the 2k context
    check_error(asample(prompt_logprobs=True, prompt_logprobs_last_n=-1), 400, "prompt_logprobs_last_n")
    assert http.post(f"/sessions/{sid}/finish", json={"reason": {"type": "success"}}).status_code == 200


def test_per_key_quotas_answer_429_and_other_keys_are_unaffected(server, http):
    sid = new_session(http)
    # 0.01 GiB of training state: a rank-64 adapter on tiny needs more than that
    over = result_of(http, http.post("/create_model", json={"session_id": sid, "model_seq_id": 0,
                                                            "base_model": "tiny", "lora_config": {"rank": 64}}))
    assert over["category"] == "user" and "max_training_gib_per_key" in over["error"]
    for seq in (1, 2):
        done = result_of(http, http.post("/create_model", json={"session_id": sid, "model_seq_id": seq,
                                                                "base_model": "tiny", "lora_config": {"rank": 2}}))
        assert done.get("type") == "create_model", done
    check_error(http.post("/create_model", json={"session_id": sid, "model_seq_id": 3, "base_model": "tiny",
                                                 "lora_config": {"rank": 2}}), 429, "max_models_per_key")
    for seq in range(3):
        assert http.post("/create_sampling_session", json={"session_id": sid, "sampling_session_seq_id": seq,
                                                           "base_model": "tiny"}).status_code == 200
    check_error(http.post("/create_sampling_session", json={"session_id": sid, "sampling_session_seq_id": 9,
                                                            "base_model": "tiny"}), 429, "max_samplers_per_key")
    with client(server, OTHER_KEY) as other:  # quotas are per key
        other_sid = new_session(other)
        assert other.post("/create_model", json={"session_id": other_sid, "model_seq_id": 0, "base_model": "tiny",
                                                 "lora_config": {"rank": 2}}).status_code == 200
        for _ in range(3):
            new_session(other)
        check_error(other.post("/create_session", json={"tags": [], "user_metadata": {}, "sdk_version": "t"}),
                    429, "max_sessions_per_key")
    # ending the session frees its models and samplers
    assert http.post(f"/sessions/{sid}/finish", json={"reason": {"type": "success"}}).status_code == 200
    still_serving(server)


def test_checkpoint_names_are_validated_and_sampler_names_are_not_replaced(server):
    service = sdk_service(server)
    tc = service.create_lora_training_client(base_model="tiny", rank=2).result()
    for bad in ("x" * 300, "a\x00b", "../escape", ".hidden"):
        with pytest.raises(tinker.RequestFailedError, match="is not allowed") as info:
            tc.save_state(bad).result()
        assert info.value.category == "user"
    tc.save_weights_for_sampler("once").result()
    with pytest.raises(tinker.RequestFailedError, match="exists; choose another name"):
        tc.save_weights_for_sampler("once").result()
    assert tc.save_state("ok-name_1.0").result().path.endswith("/weights/ok-name_1.0")
    service.close("success").result()
    still_serving(server)


@pytest.mark.parametrize("argv, fragment", [
    (["serve-tinker", "bogus=1"], "unrecognized arguments: --bogus=1"),
    (["serve-tinker", "max_models_per_key=many"], "invalid int value"),
    (["serve-tinker", "max_lora_rank=0"], "max_lora_rank must be >= 1"),
])
def test_bad_command_lines_are_one_line_and_exit_2(argv, fragment, capsys):
    from recipes.__main__ import main as cookbook_main

    assert cookbook_main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
