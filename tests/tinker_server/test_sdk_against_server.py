"""The official SDK drives the server unchanged, with the in-process backend's results (acceptance 1, 3)."""

from __future__ import annotations

import threading

import pytest
import tinker
from tinker import types
from tinker_flows import PROMPT, datum, max_differences, quickstart, sdk_service

from cookbook.backend.tinker_server import ServerConfig, ServerThread

TOL = 1e-5


def test_quickstart_and_rl_step_match_the_in_process_backend(server, local_service):
    service = sdk_service(server)
    remote = quickstart(service)
    local = quickstart(local_service, rollouts=remote.rollouts)
    loss_diff, logprob_diff = max_differences(remote, local)
    print(f"max relative loss difference {loss_diff:.2e}, max logprob difference {logprob_diff:.2e}")
    assert loss_diff <= TOL and logprob_diff <= TOL
    assert remote.losses[5] < remote.losses[0]  # it trained
    assert remote.greedy == local.greedy and len(remote.greedy[0]) > 0
    for (tokens_r, logprobs_r), (tokens_l, logprobs_l) in zip(remote.rollouts, local.rollouts):
        assert tokens_r == tokens_l and logprobs_r == pytest.approx(logprobs_l, abs=TOL)  # same seed, same weights
    service.close("success").result()


def test_two_clients_train_concurrently_with_the_results_of_running_alone(server):
    services = [sdk_service(server) for _ in range(4)]  # each its own session
    alone = [quickstart(services[i], seed=i, offset=i, rounds=3) for i in range(2)]
    together: list = [None, None]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            together[i] = quickstart(services[2 + i], seed=i, offset=i, rounds=3)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for a, b in zip(alone, together):
        loss_diff, logprob_diff = max_differences(b, a)
        print(f"concurrent vs alone: loss {loss_diff:.2e}, logprobs {logprob_diff:.2e}")
        assert loss_diff <= TOL and logprob_diff <= TOL
        assert a.greedy == b.greedy
    assert alone[0].losses != alone[1].losses  # different adapters really trained on different data
    for service in services:
        service.close("success").result()


def test_checkpoints_round_trip_through_tinker_paths(server):
    service = sdk_service(server)
    tc = service.create_lora_training_client(base_model="tiny", rank=8, seed=3).result()
    tok = tc.get_tokenizer()
    data = [datum(tok.encode(f"{a}+{b}={a + b}\n")) for a, b in [(1, 2), (30, 40)]]
    tc.forward_backward(data, "cross_entropy")
    tc.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    before = tc.forward(data, "cross_entropy").result()

    state = tc.save_state("ckpt").result().path
    assert state.startswith("tinker://") and state.endswith("/weights/ckpt")
    resumed = service.create_training_client_from_state_with_optimizer(state).result()
    assert resumed.model_id != tc.model_id and resumed.get_info().lora_rank == 8
    after = resumed.forward(data, "cross_entropy").result()
    assert after.metrics["loss:sum"] == pytest.approx(before.metrics["loss:sum"], rel=TOL)
    fresh = service.create_training_client_from_state(state).result()  # weights only
    assert fresh.forward(data, "cross_entropy").result().metrics["loss:sum"] == pytest.approx(
        before.metrics["loss:sum"], rel=TOL)

    sampler_path = tc.save_weights_for_sampler("s").result().path
    assert sampler_path.startswith("tinker://") and "/sampler_weights/" in sampler_path
    params = types.SamplingParams(max_tokens=5, temperature=0.0)
    prompt = types.ModelInput.from_ints(tok.encode("1+2="))
    from_path = service.create_sampling_client(model_path=sampler_path).result()  # asks the server for its base model
    assert from_path.get_base_model() == "tiny"
    snapshot = tc.save_weights_and_get_sampling_client().result()
    assert from_path.sample(prompt, 1, params).result().sequences[0].tokens == \
        snapshot.sample(prompt, 1, params).result().sequences[0].tokens

    base = service.create_sampling_client(base_model="tiny").result()
    response = base.sample(prompt, 1, types.SamplingParams(max_tokens=3, temperature=0.0),
                           include_prompt_logprobs=True, prompt_logprobs_last_n=2).result()
    assert response.prompt_logprobs[:-2] == [None] * (prompt.length - 2)
    assert all(isinstance(x, float) for x in response.prompt_logprobs[-2:])
    assert base.compute_logprobs(prompt).result()[0] is None

    with pytest.raises(tinker.RequestFailedError, match="CheckpointNotFoundError") as info:
        service.create_training_client_from_state(state.replace("/ckpt", "/missing")).result()
    assert info.value.category == "user"
    service.close("success").result()


def test_a_failed_request_leaves_the_training_client_usable(server):
    service = sdk_service(server)
    tc = service.create_lora_training_client(base_model="tiny", rank=8, seed=0).result()
    good = [datum([1, 2, 3, 4])]
    with pytest.raises(tinker.RequestFailedError, match="TokenOutOfVocabularyError") as info:
        tc.forward_backward([datum([1, 2, 10**7])], "cross_entropy").result()
    assert info.value.category == "user"
    with pytest.raises(tinker.RequestFailedError, match="UnknownLossError"):
        tc.forward(good, "no_such_loss").result()
    out = tc.forward_backward(good, "cross_entropy").result()  # later seq ids still run
    tc.optim_step(types.AdamParams(learning_rate=1e-3)).result()
    assert out.metrics["loss:sum"] > 0
    service.close("success").result()


def test_chunks_sent_out_of_order_accumulate_like_one_call(local_service, tmp_path):
    """With 2 datums per request the SDK sends 7 datums as 4 chunks in parallel (the first one last);
    the server runs them by seq id, so loss, logprobs and the accumulated gradient equal one call."""
    config = ServerConfig(port=0, dtype="float32", checkpoint_root=str(tmp_path), fwdbwd_max_chunk_len=2,
                          log_level="warning")
    with ServerThread(config) as chunking:
        service = sdk_service(chunking)
        results = []
        for svc in (service, local_service):
            tc = svc.create_lora_training_client(base_model="tiny", rank=8, seed=5).result()
            tok = tc.get_tokenizer()
            data = [datum(tok.encode(f"{a}+{b}={a + b}\n")) for a, b in [(1, 2), (30, 40), (5, 55), (9, 9),
                                                                         (10, 20), (44, 4), (70, 7)]]
            fb = tc.forward_backward(data, "cross_entropy")
            opt = tc.optim_step(types.AdamParams(learning_rate=1e-3))
            after = tc.forward(data, "cross_entropy")
            results.append((fb.result(), opt.result(), after.result()))
        assert chunking.app.state.server.stats["arrived_early"] >= 1
        service.close("success").result()
    (fb_r, opt_r, after_r), (fb_l, opt_l, after_l) = results
    pairs = [(fb_r, fb_l, "loss:sum"), (opt_r, opt_l, "grad_norm:mean"), (after_r, after_l, "loss:sum")]
    print("chunked vs one call, relative: loss {:.1e}, grad norm {:.1e}, loss after the step {:.1e}".format(
        *(abs(got.metrics[k] / want.metrics[k] - 1) for got, want, k in pairs)))
    assert fb_r.metrics["loss:sum"] == pytest.approx(fb_l.metrics["loss:sum"], rel=TOL)
    assert opt_r.metrics["grad_norm:mean"] == pytest.approx(opt_l.metrics["grad_norm:mean"], rel=TOL)
    assert after_r.metrics["loss:sum"] == pytest.approx(after_l.metrics["loss:sum"], rel=TOL)
    for got, want in zip(fb_r.loss_fn_outputs + after_r.loss_fn_outputs,
                         fb_l.loss_fn_outputs + after_l.loss_fn_outputs):
        assert got["logprobs"].to_numpy() == pytest.approx(want["logprobs"].to_numpy(), abs=TOL)


def test_concurrent_samples_from_two_clients_reach_the_backend_together(server):
    """While the backend is busy, sample requests of two clients (two adapters) queue up in it and are
    decoded as one batch: the server hands each to the backend as soon as it arrives."""
    engine = server.app.state.server.service.engine  # the local backend's engine: for its batching counters
    services = [sdk_service(server) for _ in range(2)]
    trainers = [s.create_lora_training_client(base_model="tiny", rank=8, seed=i).result()
                for i, s in enumerate(services)]
    samplers = [tc.save_weights_and_get_sampling_client().result() for tc in trainers]
    tok = trainers[0].get_tokenizer()
    long_batch = [datum(tok.encode(f"{i}+{i}={2 * i}\n" * 8)) for i in range(16)]
    busy = trainers[0].forward_backward(long_batch, "cross_entropy")  # keeps the engine busy for a while
    before = dict(engine.stats)
    prompt = types.ModelInput.from_ints(tok.encode(PROMPT))
    params = types.SamplingParams(max_tokens=4, temperature=0.0)
    futures = [sampler.sample(prompt, 1, params) for _ in range(3) for sampler in samplers]
    results = [f.result() for f in futures]
    busy.result()
    requests = engine.stats["sample_requests"] - before["sample_requests"]
    batches = engine.stats["sample_batches"] - before["sample_batches"]
    print(f"{requests} sample requests decoded in {batches} batch(es)")
    assert requests == 6 and batches < requests
    assert all(len(r.sequences) == 1 for r in results)
    for service in services:
        service.close("success").result()
