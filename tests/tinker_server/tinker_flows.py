"""The flows the server tests run twice, through the official SDK and in-process, and compare."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tinker
from tinker import types

from cookbook.primitives import ready

PROBLEMS = [(12, 34), (7, 58), (40, 41), (23, 9), (66, 15), (3, 3), (51, 27), (19, 80)]
PROMPT = "12+34="


API_KEY = "tml-test-key"


def sdk_service(server) -> tinker.ServiceClient:
    return tinker.ServiceClient(base_url=server.url, api_key=API_KEY)


def datum(tokens: list[int], **extra) -> types.Datum:
    inputs = dict(target_tokens=tokens[1:], weights=[1.0] * (len(tokens) - 1))
    inputs.update(extra)
    return types.Datum(model_input=types.ModelInput.from_ints(tokens[:-1]), loss_fn_inputs=inputs)


@dataclass
class FlowResult:
    losses: list[float] = field(default_factory=list)  # loss:sum per forward_backward
    logprobs: list[list[np.ndarray]] = field(default_factory=list)  # per forward_backward, per datum
    greedy: list[list[int]] = field(default_factory=list)
    rollouts: list[tuple[list[int], list[float]]] = field(default_factory=list)  # seeded temperature-1 samples


def quickstart(service, *, seed: int = 0, rounds: int = 6, offset: int = 0,
               rollouts: list[tuple[list[int], list[float]]] | None = None) -> FlowResult:
    """The Tinker docs' quickstart shape (tokenizer, ``rounds`` x forward_backward + optim_step, a
    sampler, greedy samples), then one RL step: seeded samples scored with ``importance_sampling``.

    ``rollouts`` replaces the RL step's own samples, so both sides can train on identical data.
    """
    result = FlowResult()
    tc = ready(service.create_lora_training_client(base_model="tiny", rank=8, seed=seed))
    tok = tc.get_tokenizer()
    data = [datum(tok.encode(f"{a + offset}+{b}={a + offset + b}\n")) for a, b in PROBLEMS]

    def step(batch, loss_fn):
        fb = tc.forward_backward(batch, loss_fn)
        opt = tc.optim_step(types.AdamParams(learning_rate=1e-2))
        out = fb.result()
        opt.result()
        result.losses.append(out.metrics["loss:sum"])
        result.logprobs.append([o["logprobs"].to_numpy() for o in out.loss_fn_outputs])

    for _ in range(rounds):
        step(data, "cross_entropy")
    sampler = ready(tc.save_weights_and_get_sampling_client())
    prompt = tok.encode(PROMPT)
    greedy = sampler.sample(types.ModelInput.from_ints(prompt), 2,
                            types.SamplingParams(max_tokens=6, temperature=0.0)).result()
    result.greedy = [list(s.tokens) for s in greedy.sequences]
    sampled = sampler.sample(types.ModelInput.from_ints(prompt), 4,
                             types.SamplingParams(max_tokens=6, temperature=1.0, seed=7)).result()
    result.rollouts = [(list(s.tokens), list(s.logprobs)) for s in sampled.sequences]
    rl_data = []
    for i, (tokens, logprobs) in enumerate(rollouts if rollouts is not None else result.rollouts):
        n_prompt, advantage = len(prompt) - 1, i - 1.5
        rl_data.append(datum(prompt + tokens, logprobs=[0.0] * n_prompt + logprobs,
                             advantages=[0.0] * n_prompt + [advantage] * len(tokens)))
    step(rl_data, "importance_sampling")
    return result


def max_differences(a: FlowResult, b: FlowResult) -> tuple[float, float]:
    """(max relative difference of the losses, max absolute difference of the logprobs)."""
    assert len(a.losses) == len(b.losses)
    loss = max(abs(x - y) / max(1.0, abs(y)) for x, y in zip(a.losses, b.losses))
    logp = max(float(np.max(np.abs(x - y))) for xs, ys in zip(a.logprobs, b.logprobs) for x, y in zip(xs, ys))
    return loss, logp
