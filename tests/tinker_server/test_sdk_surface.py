"""Every public method of the SDK's ServiceClient, TrainingClient, SamplingClient and RestClient,
called against ``cookbook serve-tinker`` on 127.0.0.1 (acceptance 2 of the Tinker-surface issue).

Each test names the methods it exercises with ``@covers(...)``; a recorder wraps every public SDK
method while the test runs and fails the test when one it names was not called from this file.
``test_every_public_sdk_method_is_covered`` enumerates the installed SDK's methods with ``inspect``
and fails when one has no test. ``tests/README.md`` has the method -> test table.

Methods this server cannot serve fail with a ``category: user`` error naming the reason (README
"serve-tinker"); the test checks that error.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import tinker
from tinker import types
from tinker.lib.api_future_impl import QueueState
from tinker_flows import API_KEY, datum, sdk_service

from cookbook.rl.provenance import Run, with_provenance

CLASSES = {"ServiceClient": tinker.ServiceClient, "TrainingClient": tinker.TrainingClient,
           "SamplingClient": tinker.SamplingClient, "RestClient": tinker.RestClient}
PROBLEMS = [(12, 34), (7, 58), (40, 41)]


def public_methods() -> set[str]:
    """``Class.method`` for every public callable of the four SDK clients (async variants included)."""
    return {f"{name}.{attr}" for name, cls in CLASSES.items()
            for attr, value in inspect.getmembers(cls) if not attr.startswith("_") and callable(value)}


def covers(*methods: str):
    return pytest.mark.covers(*methods)


def _with_async(*methods: str) -> tuple[str, ...]:
    return tuple(m for base in methods for m in (base, f"{base}_async"))


_called: set[str] = set()


@pytest.fixture(autouse=True)
def record_calls(request, monkeypatch):
    """Record the SDK methods this module calls directly, and check the test's ``covers`` list."""
    _called.clear()
    this_module = __name__
    for name, cls in CLASSES.items():
        for attr in {m.split(".", 1)[1] for m in public_methods() if m.startswith(name + ".")}:
            raw = inspect.getattr_static(cls, attr)
            func = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
            if not callable(func):
                continue

            def wrapper(*args, __f=func, __key=f"{name}.{attr}", **kwargs):
                if sys._getframe(1).f_globals.get("__name__") == this_module:
                    _called.add(__key)
                return __f(*args, **kwargs)
            wrapped = functools.wraps(func)(wrapper)
            if isinstance(raw, staticmethod):
                wrapped = staticmethod(wrapped)
            elif isinstance(raw, classmethod):
                wrapped = classmethod(wrapped)
            monkeypatch.setattr(cls, attr, wrapped)
    yield
    marker = request.node.get_closest_marker("covers")
    if marker is not None and getattr(request.node, "call_passed", False):  # set in conftest.py
        missing = set(marker.args) - _called
        assert not missing, f"{request.node.name} claims {sorted(missing)} but never called them"


def user_error(exc: BaseException, *fragments: str) -> None:
    """A ``category: user`` error (a failed request or a 4xx REST reply) whose message has ``fragments``."""
    if isinstance(exc, tinker.RequestFailedError):
        assert exc.category == types.RequestErrorCategory.User, exc
        message = str(exc)
    else:
        assert isinstance(exc, tinker.APIStatusError) and 400 <= exc.status_code < 500, exc
        assert isinstance(exc.body, dict) and exc.body.get("category") == "user", exc.body
        message = str(exc.body.get("error"))
    assert all(f in message for f in fragments), message


def _addition(tok) -> list[types.Datum]:
    return [datum(tok.encode(f"{a}+{b}={a + b}\n")) for a, b in PROBLEMS]


@pytest.fixture(scope="module")
def service(server):
    client = sdk_service(server)
    yield client


@pytest.fixture(scope="module")
def trained(service):
    """A LoRA run with user metadata, trained a few steps, with a state and sampler checkpoint."""
    tc = service.create_lora_training_client(base_model="tiny", rank=8, seed=1,
                                             user_metadata={"purpose": "surface"}).result()
    data = _addition(tc.get_tokenizer())
    for _ in range(3):
        tc.forward_backward(data, "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    state = tc.save_state("s1").result().path
    sampler = tc.save_weights_for_sampler("w1").result().path
    return tc, data, state, sampler


# --- ServiceClient --------------------------------------------------------------------------

@covers(*_with_async("ServiceClient.get_server_capabilities", "ServiceClient.create_lora_training_client",
                     "ServiceClient.create_sampling_client", "ServiceClient.create_training_client_from_state",
                     "ServiceClient.create_training_client_from_state_with_optimizer"),
        "ServiceClient.copy_weights", "ServiceClient.get_console_url", "ServiceClient.get_telemetry",
        "ServiceClient.create_rest_client", "ServiceClient.close", "ServiceClient.create_custom_loss")
def test_service_client(server, trained, monkeypatch):
    _, data, state, sampler_path = trained
    service = sdk_service(server)
    caps = service.get_server_capabilities()
    assert "tiny" in {m.model_name for m in caps.supported_models}
    assert asyncio.run(_async_caps(service)) == caps

    tc = service.create_lora_training_client(base_model="tiny", rank=4, user_metadata={"k": "v"}).result()
    tc2 = asyncio.run(_await(service.create_lora_training_client_async(base_model="tiny", rank=4)))
    assert tc.get_info().lora_rank == 4 and tc2.model_id != tc.model_id
    assert service.create_rest_client().get_training_run(tc.model_id).result().user_metadata == {"k": "v"}

    # weights only / weights and optimizer state, sync and async: the same losses as the saved run
    expected = trained[0].forward(data, "cross_entropy").result().metrics["loss:sum"]
    loaded = [service.create_training_client_from_state(state).result(),
              asyncio.run(_await(service.create_training_client_from_state_async(state))),
              service.create_training_client_from_state_with_optimizer(state).result(),
              asyncio.run(_await(service.create_training_client_from_state_with_optimizer_async(state)))]
    for client in loaded:
        assert client.forward(data, "cross_entropy").result().metrics["loss:sum"] == pytest.approx(expected, rel=1e-5)

    base = service.create_sampling_client(base_model="tiny").result()
    saved = asyncio.run(_await(service.create_sampling_client_async(model_path=sampler_path)))
    assert base.get_base_model() == saved.get_base_model() == "tiny"

    monkeypatch.setenv("TINKER_PROJECT_ID", "surface")  # ServiceClient.copy_weights copies into that project
    copied = service.copy_weights(state).result()
    assert copied.startswith("tinker://") and copied != state and "/weights/" in copied
    assert service.create_training_client_from_state(copied).result().forward(data, "cross_entropy").result().metrics[
        "loss:sum"] == pytest.approx(expected, rel=1e-5)

    assert isinstance(service.get_console_url(), str)
    assert service.get_telemetry() is None  # TINKER_TELEMETRY=0 in these tests

    def neg_ll(logprobs, weights):
        loss = -(logprobs * weights).sum()
        return loss, {"custom/neg_ll:sum": loss}
    handle = service.create_custom_loss(neg_ll, {"logprobs": 1, "weights": 1}).result()
    custom = tc.forward_backward_custom(data, handle).result()
    builtin = tc.forward(data, "cross_entropy").result()
    assert custom.metrics["custom/neg_ll:sum"] == pytest.approx(builtin.metrics["loss:sum"], rel=1e-5)
    service.close("success").result()


async def _async_caps(service):
    return await service.get_server_capabilities_async()


async def _await(awaitable):
    return await awaitable


# --- TrainingClient -------------------------------------------------------------------------

@covers(*_with_async("TrainingClient.forward", "TrainingClient.forward_backward", "TrainingClient.optim_step",
                     "TrainingClient.get_info", "TrainingClient.save_state", "TrainingClient.load_state",
                     "TrainingClient.load_state_with_optimizer", "TrainingClient.save_weights_for_sampler",
                     "TrainingClient.save_weights_and_get_sampling_client", "TrainingClient.create_sampling_client",
                     "TrainingClient.save_weights_external", "TrainingClient.forward_backward_custom"),
        "TrainingClient.get_tokenizer", "TrainingClient.get_console_url", "TrainingClient.get_telemetry")
def test_training_client(service):
    tc = service.create_lora_training_client(base_model="tiny", rank=8, seed=2).result()
    tok = tc.get_tokenizer()
    data = _addition(tok)
    first = tc.forward(data, "cross_entropy").result().metrics["loss:sum"]
    assert asyncio.run(_await(tc.forward_async(data, "cross_entropy"))).result().metrics["loss:sum"] == first
    tc.forward_backward(data, "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    fb = asyncio.run(_await(tc.forward_backward_async(data, "cross_entropy")))
    asyncio.run(_await(tc.optim_step_async(types.AdamParams(learning_rate=1e-2)))).result()
    assert fb.result().metrics["loss:sum"] < first
    info = tc.get_info()
    assert info.lora_rank == 8 and asyncio.run(_await(tc.get_info_async())).model_id == info.model_id

    saved = tc.save_state("a").result().path
    saved_async = asyncio.run(_await(tc.save_state_async("b"))).result().path
    assert saved.endswith("/weights/a") and saved_async.endswith("/weights/b")
    at_save = tc.forward(data, "cross_entropy").result().metrics["loss:sum"]
    tc.forward_backward(data, "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=1e-1)).result()
    assert tc.forward(data, "cross_entropy").result().metrics["loss:sum"] != pytest.approx(at_save, rel=1e-5)
    for load in (lambda: tc.load_state(saved), lambda: asyncio.run(_await(tc.load_state_async(saved))),
                 lambda: tc.load_state_with_optimizer(saved),
                 lambda: asyncio.run(_await(tc.load_state_with_optimizer_async(saved)))):
        load().result()
        assert tc.forward(data, "cross_entropy").result().metrics["loss:sum"] == pytest.approx(at_save, rel=1e-5)

    prompt = types.ModelInput.from_ints(tok.encode("12+34="))
    greedy = types.SamplingParams(max_tokens=4, temperature=0.0)
    path = tc.save_weights_for_sampler("w").result().path
    path_async = asyncio.run(_await(tc.save_weights_for_sampler_async("w2"))).result().path
    samplers = [tc.save_weights_and_get_sampling_client().result(),
                asyncio.run(_await(tc.save_weights_and_get_sampling_client_async())),
                tc.create_sampling_client(path).result(),
                asyncio.run(_await(tc.create_sampling_client_async(path_async)))]
    outs = [s.sample(prompt, 1, greedy).result().sequences[0].tokens for s in samplers]
    assert all(o == outs[0] for o in outs) and len(outs[0]) > 0

    external = tc.save_weights_external("hf").result().path
    external_async = asyncio.run(_await(tc.save_weights_external_async("hf2"))).result().path
    assert "/external_weights/hf" in external and external_async.endswith("/external_weights/hf2")

    def weighted(data_, logprobs):  # CustomLossFnV1: the same as cross_entropy
        loss = sum(-(lp * d.loss_fn_inputs["weights"].to_torch()).sum() for d, lp in zip(data_, logprobs))
        return loss, {"mine": float(loss)}
    custom = tc.forward_backward_custom(data, weighted).result()
    custom_async = asyncio.run(_await(tc.forward_backward_custom_async(data, weighted))).result()
    reference = tc.forward(data, "cross_entropy").result().metrics["loss:sum"]
    assert custom.metrics["mine"] == pytest.approx(reference, rel=1e-5) == custom_async.metrics["mine"]
    assert isinstance(tc.get_console_url(), str) and tc.get_telemetry() is None


@covers("TrainingClient.forward_backward", "TrainingClient.optim_step", "SamplingClient.sample")
def test_every_loss_and_both_optimizers(service, local_service):
    """Every built-in loss through the server equals the in-process backend on the same data;
    gspo and stable_reinforce (provenance to recorded samples) included; a Dimuon run trains."""
    remote = service.create_lora_training_client(base_model="tiny", rank=8, seed=5).result()
    local = local_service.create_lora_training_client("tiny", rank=8, seed=5)
    tok = remote.get_tokenizer()
    prompt = tok.encode("12+34=")
    sampler = remote.save_weights_and_get_sampling_client(record_stability_info=True).result()
    sampled = sampler.sample(types.ModelInput.from_ints(prompt), 4,
                             types.SamplingParams(max_tokens=5, temperature=1.0, seed=3)).result()
    data, runs = [], []
    for i, seq in enumerate(sampled.sequences):
        assert seq.sequence_id
        tokens, n = prompt + list(seq.tokens), len(prompt) - 1
        data.append(datum(tokens, logprobs=[0.0] * n + list(seq.logprobs), advantages=[0.0] * n + [i - 1.5] * len(
            seq.tokens), sequence_ratio_mask=[0.0] * n + [1.0] * len(seq.tokens)))
        runs.append([Run(seq.sequence_id, False, 0, len(prompt)), Run(seq.sequence_id, True, 0, len(seq.tokens))])
    for loss in ("importance_sampling", "ppo", "cispo", "dro", "gspo"):
        config = {"clip_low_threshold": 0.8, "clip_high_threshold": 1.2} if loss == "gspo" else None
        ours = remote.forward_backward(data, loss, config).result().metrics["loss:sum"]
        theirs = local.forward_backward(data, loss, config).result().metrics["loss:sum"]
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6), loss
    with_prov = [with_provenance(d, r) for d, r in zip(data, runs)]
    out = remote.forward_backward(with_prov, "stable_reinforce").result()
    # on-policy and unclipped: the loss is -sum(A * logp) over the sampled tokens
    expected = -sum(float(np.dot(d.loss_fn_inputs["advantages"].to_numpy(), o["logprobs"].to_numpy()))
                    for d, o in zip(data, out.loss_fn_outputs))
    assert out.metrics["loss:sum"] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    with pytest.raises(tinker.RequestFailedError) as info:  # no provenance: refused, naming what is missing
        remote.forward_backward(data, "stable_reinforce").result()
    user_error(info.value, "provenance")
    remote.optim_step(types.AdamParams(learning_rate=1e-3)).result()

    dimuon = service.create_lora_training_client(base_model="tiny", rank=8,
                                                 optimizer=types.DimuonOptimizerConfig()).result()
    plain = _addition(tok)
    before = dimuon.forward(plain, "cross_entropy").result().metrics["loss:sum"]
    for _ in range(3):
        dimuon.forward_backward(plain, "cross_entropy")
        dimuon.optim_step(types.DimuonParams(learning_rate=2e-2)).result()
    assert dimuon.forward(plain, "cross_entropy").result().metrics["loss:sum"] < before
    with pytest.raises(tinker.RequestFailedError) as info:  # the family is fixed at creation
        dimuon.optim_step(types.AdamParams(learning_rate=1e-3)).result()
    user_error(info.value, "DimuonParams")


# --- SamplingClient -------------------------------------------------------------------------

@covers(*_with_async("SamplingClient.sample", "SamplingClient.compute_logprobs", "SamplingClient.get_base_model"),
        "SamplingClient.create", "SamplingClient.from_sampler_handle", "SamplingClient.get_sampler_handle",
        "SamplingClient.get_tokenizer", "SamplingClient.get_telemetry", "SamplingClient.on_queue_state_change")
def test_sampling_client(service, trained, monkeypatch):
    tc, _, _, sampler_path = trained
    sampler = tc.create_sampling_client(sampler_path, record_stability_info=True).result()
    tok = tc.get_tokenizer()
    # the SDK loads a sampler's tokenizer by its base model's name: a Hugging Face id or a directory
    # (`tiny` is a short name of this server; its directory is the tokenizer_id get_info reports)
    tiny_dir = tc.get_info().model_data.tokenizer_id
    by_dir = service.create_sampling_client(base_model=tiny_dir).result()
    assert by_dir.get_tokenizer().encode("12+34=") == tok.encode("12+34=")
    prompt = types.ModelInput.from_ints(tok.encode("12+34="))
    n = prompt.length
    params = types.SamplingParams(max_tokens=4, temperature=1.0, seed=11)
    target = types.TensorData.from_numpy(np.array([[t, 5] for t in prompt.to_ints()[1:]], dtype=np.int64))
    resp = sampler.sample(prompt, 2, params, include_prompt_logprobs=True, topk_prompt_logprobs=3,
                          topk_sample_logprobs=2, target_prompt_logprobs=target, prompt_alt_tokens_k=2,
                          prompt_logprobs_last_n=3).result()
    plain = sampler.compute_logprobs(prompt).result()
    assert len(plain) == n and plain[0] is None
    assert resp.prompt_logprobs[:n - 3] == [None] * (n - 3)  # prompt_logprobs_last_n
    assert resp.prompt_logprobs[n - 3:] == pytest.approx(plain[n - 3:], abs=1e-5)
    assert all(len(k) == 3 for k in resp.topk_prompt_logprobs[n - 3:])
    for seq in resp.sequences:
        assert seq.sequence_id and len(seq.tokens) == len(seq.logprobs)
        assert [len(k) for k in seq.topk_logprobs] == [2] * len(seq.tokens)
    assert resp.target_prompt_logprobs is not None and resp.prompt_alt_tokens is not None
    again = asyncio.run(_await(sampler.sample_async(prompt, 2, params))).sequences
    assert [s.tokens for s in again] == [s.tokens for s in resp.sequences]  # same seed, same weights
    assert asyncio.run(_await(sampler.compute_logprobs_async(prompt))) == pytest.approx(plain, abs=1e-6, nan_ok=True)
    assert sampler.get_base_model() == asyncio.run(_await(sampler.get_base_model_async())) == "tiny"

    monkeypatch.setenv("TINKER_API_KEY", API_KEY)
    handle = sampler.get_sampler_handle()
    twin = tinker.SamplingClient.from_sampler_handle(handle, api_key=API_KEY)
    greedy = types.SamplingParams(max_tokens=4, temperature=0.0)
    assert twin.sample(prompt, 1, greedy).result().sequences[0].tokens == \
        sampler.sample(prompt, 1, greedy).result().sequences[0].tokens
    created = tinker.SamplingClient.create(service.holder, base_model="tiny").result()
    assert created.get_base_model() == "tiny"
    sampler.on_queue_state_change(QueueState.ACTIVE, None)
    assert sampler.get_telemetry() is None


# --- RestClient -----------------------------------------------------------------------------

@covers(*_with_async("RestClient.get_training_run", "RestClient.get_training_run_by_tinker_path",
                     "RestClient.list_training_runs", "RestClient.list_checkpoints", "RestClient.list_user_checkpoints",
                     "RestClient.delete_checkpoint", "RestClient.delete_checkpoint_from_tinker_path",
                     "RestClient.publish_checkpoint_from_tinker_path",
                     "RestClient.unpublish_checkpoint_from_tinker_path",
                     "RestClient.set_checkpoint_ttl_from_tinker_path", "RestClient.get_external_weights_urls",
                     "RestClient.copy_weights", "RestClient.get_session", "RestClient.list_sessions",
                     "RestClient.assign_session_project", "RestClient.get_sampler",
                     "RestClient.get_current_checkpoint_storage_usage", "RestClient.get_billing_usage",
                     "RestClient.get_audit_log", "RestClient.export_session_trace"),
        "RestClient.get_weights_info_by_tinker_path", "RestClient.search_sessions",
        "RestClient.get_server_capabilities",
        "RestClient.whoami", "RestClient.get_telemetry")
def test_rest_client(server, service, trained):
    tc, _, state, sampler_path = trained
    rest = service.create_rest_client()
    run_id = tc.model_id

    run = rest.get_training_run(run_id).result()
    assert isinstance(run, types.TrainingRun) and run.training_run_id == run_id
    assert run.user_metadata == {"purpose": "surface"} and run.is_lora and run.lora_rank == 8
    assert run.last_checkpoint is not None and run.last_checkpoint.tinker_path == state
    assert asyncio.run(_await(rest.get_training_run_async(run_id))) == run
    assert rest.get_training_run_by_tinker_path(state).result().training_run_id == run_id
    assert asyncio.run(_await(rest.get_training_run_by_tinker_path_async(sampler_path))).training_run_id == run_id
    listed = rest.list_training_runs(limit=100).result()
    assert run_id in {r.training_run_id for r in listed.training_runs}
    assert asyncio.run(_await(rest.list_training_runs_async(limit=1))).training_runs[0].training_run_id
    info = rest.get_weights_info_by_tinker_path(state).result()
    assert info.base_model == "tiny" and info.is_lora and info.lora_rank == 8

    # checkpoints: list, publish / unpublish, ttl, delete (by run and id, and by path)
    ids = {c.checkpoint_id for c in rest.list_checkpoints(run_id).result().checkpoints}
    assert {"weights/s1", "sampler_weights/w1"} <= ids
    assert ids == {c.checkpoint_id for c in asyncio.run(_await(rest.list_checkpoints_async(run_id))).checkpoints}
    mine = rest.list_user_checkpoints(limit=1000).result().checkpoints
    assert state in {c.tinker_path for c in mine}
    assert asyncio.run(_await(rest.list_user_checkpoints_async(limit=1))).checkpoints
    rest.publish_checkpoint_from_tinker_path(state).result()
    assert _checkpoint(rest, run_id, "weights/s1").public
    with pytest.raises(tinker.APIStatusError) as error:
        rest.publish_checkpoint_from_tinker_path(state).result()
    user_error(error.value, "already public")
    rest.unpublish_checkpoint_from_tinker_path(state).result()
    asyncio.run(_await(rest.publish_checkpoint_from_tinker_path_async(state)))
    asyncio.run(_await(rest.unpublish_checkpoint_from_tinker_path_async(state)))
    assert not _checkpoint(rest, run_id, "weights/s1").public
    rest.set_checkpoint_ttl_from_tinker_path(state, 3600).result()
    assert _checkpoint(rest, run_id, "weights/s1").expires_at is not None
    asyncio.run(_await(rest.set_checkpoint_ttl_from_tinker_path_async(state, None)))
    assert _checkpoint(rest, run_id, "weights/s1").expires_at is None

    doomed = [tc.save_state(f"doomed{i}").result().path for i in range(4)]
    rest.delete_checkpoint(run_id, "weights/doomed0").result()
    asyncio.run(_await(rest.delete_checkpoint_async(run_id, "weights/doomed1")))
    rest.delete_checkpoint_from_tinker_path(doomed[2]).result()
    asyncio.run(_await(rest.delete_checkpoint_from_tinker_path_async(doomed[3])))
    left = {c.checkpoint_id for c in rest.list_checkpoints(run_id).result().checkpoints}
    assert not any(c.startswith("weights/doomed") for c in left)
    with pytest.raises(tinker.APIStatusError) as error:
        rest.get_weights_info_by_tinker_path(doomed[0]).result()
    user_error(error.value, "no checkpoint")

    # an exported checkpoint is downloadable by its signed URLs, without the API key
    external = tc.save_weights_external("surface-export").result().path
    urls = rest.get_external_weights_urls(external).result()
    assert asyncio.run(_await(rest.get_external_weights_urls_async(external))).urls.keys() == urls.urls.keys()
    assert "adapter_config.json" in urls.urls
    downloaded = httpx.get(urls.urls["adapter_config.json"])
    assert downloaded.status_code == 200 and downloaded.json()["r"] == 8
    assert httpx.get(urls.urls["adapter_config.json"] + "x").status_code == 404
    with pytest.raises(ValueError, match="external_weights"):  # only exports have download URLs (SDK's check)
        rest.get_external_weights_urls(state).result()

    copy = rest.copy_weights(state, destination_project_id="proj").result()
    copy_async = asyncio.run(_await(rest.copy_weights_async(sampler_path, destination_project_id="proj")))
    assert copy.startswith("tinker://") and "/sampler_weights/" in copy_async
    assert rest.get_weights_info_by_tinker_path(copy).result().lora_rank == 8

    # sessions and samplers
    session_id = service.holder.get_session_id()
    session = rest.get_session(session_id).result()
    assert run_id in session.training_run_ids
    assert asyncio.run(_await(rest.get_session_async(session_id))).training_run_ids == session.training_run_ids
    assert session_id in rest.list_sessions(limit=100).result().sessions
    assert asyncio.run(_await(rest.list_sessions_async(limit=100))).sessions
    rest.assign_session_project(session_id, "p1").result()
    asyncio.run(_await(rest.assign_session_project_async(session_id, "p2")))
    found = rest.search_sessions(types.SessionSearchRequest(project_ids=["p2"])).result()
    assert session_id in {s.session_id for s in found.sessions}
    sampler = tc.save_weights_and_get_sampling_client().result()
    sampler_id = sampler._sampling_session_id
    assert rest.get_sampler(sampler_id).result().base_model == "tiny"
    assert asyncio.run(_await(rest.get_sampler_async(sampler_id))).sampler_id == sampler_id
    assert "tiny" in {m.model_name for m in rest.get_server_capabilities().result().supported_models}
    usage = rest.get_current_checkpoint_storage_usage().result()
    assert asyncio.run(_await(rest.get_current_checkpoint_storage_usage_async())) is not None
    assert usage.model_dump()  # a response of the SDK's type

    # what this server does not keep: category-user errors naming why (README lists them)
    for call, fragment in (
            (lambda: rest.get_billing_usage("2026-01-01", "2026-02-01").result(), "billed"),
            (lambda: asyncio.run(_await(rest.get_billing_usage_async("2026-01-01", "2026-02-01"))), "billed"),
            (lambda: rest.get_audit_log().result(), "audit log"),
            (lambda: asyncio.run(_await(rest.get_audit_log_async())), "audit log"),
            (lambda: rest.export_session_trace(session_id).result(), "trace"),
            (lambda: asyncio.run(_await(rest.export_session_trace_async(session_id))), "trace")):
        with pytest.raises((tinker.APIStatusError, tinker.RequestFailedError)) as error:
            call()
        user_error(error.value, fragment)
    # whoami reads the claims of a JWT from the hosted auth exchange; the SDK refuses it itself
    # for a plain API key (README "serve-tinker"), before any request
    with pytest.raises(RuntimeError, match="whoami requires JWT auth"):
        rest.whoami().result()
    assert rest.get_telemetry() is None


def _checkpoint(rest, run_id: str, checkpoint_id: str) -> types.Checkpoint:
    found = [c for c in rest.list_checkpoints(run_id).result().checkpoints if c.checkpoint_id == checkpoint_id]
    assert len(found) == 1, checkpoint_id
    return found[0]


def test_every_public_sdk_method_is_covered():
    """Every public method of the installed SDK's four clients has a test here (a new SDK method
    makes this fail until one is written and the README table has its row)."""
    claimed = {m for obj in globals().values() if callable(obj) and obj.__name__.startswith("test_")
               for mark in getattr(obj, "pytestmark", []) if mark.name == "covers" for m in mark.args}
    missing = sorted(public_methods() - claimed)
    assert not missing, f"public SDK methods without a test: {missing}"
    assert claimed <= public_methods(), sorted(claimed - public_methods())


def test_readme_table_lists_every_method():
    table = (Path(__file__).parents[1] / "README.md").read_text()
    missing = sorted(m for m in public_methods() if f"`{m}`" not in table)
    assert not missing, f"tests/README.md has no row for {missing}"
