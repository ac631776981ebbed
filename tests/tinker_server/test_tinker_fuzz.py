"""A bounded, seeded fuzz of ``cookbook serve-tinker`` on 127.0.0.1: over a thousand malformed
requests, no 5xx, memory bounded, and the official SDK still works afterwards."""

from __future__ import annotations

import gc
import random

import httpx
import tinker
from fuzz import malformed, rss_mb, send
from tinker_flows import API_KEY, sdk_service

from cookbook.backend.tinker_server import ServerConfig, ServerThread

REQUESTS = 1200
JSON_LIMIT = 1 << 16


def test_a_thousand_malformed_requests_get_no_5xx(tmp_path):
    config = ServerConfig(port=0, checkpoint_root=str(tmp_path / "ckpt"), long_poll_s=0.05, log_level="critical",
                          max_json_bytes=JSON_LIMIT, max_request_bytes=4 * JSON_LIMIT, max_models_per_key=4,
                          max_samplers_per_key=8, max_seq_ahead=64, max_samples_per_request=8,
                          max_sample_tokens=512)
    with ServerThread(config) as server, httpx.Client(base_url=server.url + "/api/v1", timeout=60,
                                                      headers={"X-API-Key": API_KEY}) as http:
        sid = http.post("/create_session", json={"tags": [], "user_metadata": {}, "sdk_version": "t"}).json()[
            "session_id"]
        created = http.post("/create_model", json={"session_id": sid, "model_seq_id": 0, "base_model": "tiny",
                                                   "lora_config": {"rank": 2}}).json()
        mid = created["model_id"]
        sampler = http.post("/create_sampling_session", json={"session_id": sid, "sampling_session_seq_id": 0,
                                                              "base_model": "tiny"}).json()["sampling_session_id"]
        prompt = {"chunks": [{"tokens": [72, 105], "type": "encoded_text"}]}
        endpoints = {
            "/create_session": {"tags": [], "user_metadata": {"k": "v"}, "sdk_version": "t"},
            "/session_heartbeat": {"session_id": sid},
            "/retrieve_future": {"request_id": created["request_id"]},
            "/create_model": {"session_id": sid, "model_seq_id": 1, "base_model": "tiny",
                              "lora_config": {"rank": 2, "seed": 1}, "user_metadata": {"a": "b"}},
            "/get_info": {"model_id": mid},
            "/optim_step": {"model_id": mid, "seq_id": 1, "adam_params": {"learning_rate": 1e-3, "beta1": 0.9}},
            "/save_weights": {"model_id": mid, "seq_id": 2, "path": "ck"},
            "/save_weights_for_sampler": {"model_id": mid, "seq_id": 3, "path": "s"},
            "/load_weights": {"model_id": mid, "seq_id": 4, "path": "tinker://r/weights/ck", "optimizer": False},
            "/create_sampling_session": {"session_id": sid, "sampling_session_seq_id": 1, "base_model": "tiny"},
            "/asample": {"sampling_session_id": sampler, "prompt": prompt, "num_samples": 1,
                         "sampling_params": {"max_tokens": 2, "temperature": 1.0, "seed": 3, "top_k": -1},
                         "prompt_logprobs": False},
            "/telemetry": {"events": []},
        }
        rng = random.Random(0)
        unknown = [f"{sid}:train:77", "0" * 32, "nope", f"{sid}:sample:99", "", "x" * 300]
        for _ in range(20):  # warm up every code path before measuring memory
            send(http, malformed(rng, endpoints, JSON_LIMIT, unknown))
        gc.collect()
        before = rss_mb()
        statuses: dict[int, int] = {}
        server_errors, accepted = [], []
        for i in range(REQUESTS):
            request = malformed(rng, endpoints, JSON_LIMIT, unknown)
            response = send(http, request)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                server_errors.append((i, request.kind, request.path, response.text[:300]))
            elif response.headers.get("content-type", "").startswith("application/json"):
                body = response.json()
                if isinstance(body, dict) and "request_id" in body and "error" not in body:
                    accepted.append((i, request, body["request_id"]))
        for i, request, request_id in accepted:  # what the accepted ones ended as (unfinished: try_again)
            result = http.post("/retrieve_future", json={"request_id": request_id})
            if result.status_code >= 500:
                server_errors.append((i, request.kind, request.path, result.text[:300]))
            elif result.headers.get("content-type", "").startswith("application/json"):
                reply = result.json()
                if reply.get("category") == "server":
                    server_errors.append((i, request.kind, request.path, reply["error"][:300]))
        gc.collect()
        grown = rss_mb() - before
        print(f"statuses {sorted(statuses.items())}, {len(accepted)} accepted, RSS {before:.0f} MB -> +{grown:.1f}")
        assert not server_errors, server_errors[:5]
        assert sum(n for s, n in statuses.items() if 400 <= s < 500) > REQUESTS // 2, statuses
        assert grown < 50, f"RSS grew by {grown:.0f} MB over {REQUESTS} requests"
        service = sdk_service(server)  # a normal SDK user is served afterwards
        tc = service.create_lora_training_client(base_model="tiny", rank=2).result()
        tok = tc.get_tokenizer()
        ids = tok.encode("1+1=2\n")
        datum = tinker.types.Datum(model_input=tinker.types.ModelInput.from_ints(ids[:-1]),
                                   loss_fn_inputs=dict(target_tokens=ids[1:], weights=[1.0] * (len(ids) - 1)))
        assert tc.forward_backward([datum], "cross_entropy").result().metrics["loss:sum"] > 0
        service.close("success").result()
