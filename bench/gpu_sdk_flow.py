"""The official ``tinker`` SDK against ``cookbook serve-tinker`` on this machine's device.

    python -m bench.gpu_sdk_flow [--device cuda]

Starts the Tinker-compatible server on a free loopback port (in this process), then drives it
with the SDK as a user script would: a LoRA training client on ``tiny``, a few
``forward_backward`` + ``optim_step`` rounds on addition strings, a sampler snapshot, greedy and
seeded samples, one ``importance_sampling`` step on those samples and a ``save_state``. The same
calls run in-process on the local backend; the losses must agree (the server is the same engine
behind HTTP). Prints one JSON line; exit status 1 if anything disagrees.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

PROBLEMS = [(12, 34), (7, 58), (40, 41), (23, 9), (66, 15), (3, 3), (51, 27), (19, 80)]


def flow(service, rounds: int = 4) -> dict:
    from tinker import types

    from cookbook.primitives import ready

    tc = ready(service.create_lora_training_client(base_model="tiny", rank=8, seed=0))
    tok = tc.get_tokenizer()

    def datum(ids: list[int], **extra) -> types.Datum:
        inputs = dict(target_tokens=ids[1:], weights=[1.0] * (len(ids) - 1), **extra)
        return types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]), loss_fn_inputs=inputs)

    data = [datum(tok.encode(f"{a}+{b}={a + b}\n")) for a, b in PROBLEMS]
    losses = []
    for _ in range(rounds):
        fb, opt = tc.forward_backward(data, "cross_entropy"), tc.optim_step(types.AdamParams(learning_rate=1e-2))
        losses.append(fb.result().metrics["loss:sum"])
        opt.result()
    sampler = ready(tc.save_weights_and_get_sampling_client())
    prompt = tok.encode("12+34=")
    greedy = sampler.sample(types.ModelInput.from_ints(prompt), 2,
                            types.SamplingParams(max_tokens=6, temperature=0.0)).result()
    sampled = sampler.sample(types.ModelInput.from_ints(prompt), 4,
                             types.SamplingParams(max_tokens=6, temperature=1.0, seed=7)).result()
    rl = [datum(prompt + list(s.tokens), logprobs=[0.0] * (len(prompt) - 1) + list(s.logprobs),
                advantages=[0.0] * (len(prompt) - 1) + [i - 1.5] * len(s.tokens))
          for i, s in enumerate(sampled.sequences)]
    rl_loss = tc.forward_backward(rl, "importance_sampling").result().metrics["loss:sum"]
    tc.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    state = tc.save_state("sdk_flow").result().path
    return {"losses": losses, "rl_loss": rl_loss, "greedy": [list(s.tokens) for s in greedy.sequences],
            "state_path": state}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_sdk_flow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    os.environ.setdefault("TINKER_TELEMETRY", "0")
    if args.device == "cpu":
        # the SDK's threads, the server's event loop and the engine share this process: a spinning
        # OpenMP team on the engine's thread starves them on a few cores (tests/tinker_server/conftest.py)
        torch.set_num_threads(1)
    import tinker

    import cookbook
    from cookbook.backend.tinker_server import ServerConfig, ServerThread

    root = tempfile.mkdtemp(prefix="sdk-flow-")
    config = ServerConfig(port=0, device=args.device, dtype="float32", checkpoint_root=f"{root}/server",
                          log_level="warning")
    start = time.perf_counter()
    with ServerThread(config) as server:
        over_http = flow(tinker.ServiceClient(base_url=server.url, api_key="tml-gpu-suite"))
    http_s = time.perf_counter() - start
    local = flow(cookbook.service_client("local", device=args.device, dtype="float32",
                                         checkpoint_root=f"{root}/local"))
    diff = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(over_http["losses"], local["losses"]))
    ok = diff < 1e-4 and over_http["greedy"] == local["greedy"] and over_http["losses"][-1] < over_http["losses"][0]
    print(json.dumps({"ok": ok, "seconds_over_http": round(http_s, 1), "max_loss_rel_diff": diff,
                      "losses_over_http": over_http["losses"], "losses_local": local["losses"]}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
