"""bf16 (the default on GPU) on the suite's device: fp32 adapter state, and a sampler as accurate as the trainer.

bf16 rounding makes sampler and trainer logprobs differ (different operation orders round
differently); the property that matters is that neither is further from the fp32 result than the
other, and that the LoRA path is really applied in both.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from backend_helpers import DEVICE, make_datum, randomize_adapter
from tinker import types

from cookbook.backend.local import Engine, ServiceClient

PROMPTS = [[104, 101, 108, 108, 111], [49, 43, 49, 61]]


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    engines = [Engine(str(DEVICE), "bfloat16"), Engine(str(DEVICE), "float32")]
    bf16, fp32 = (ServiceClient(engine=e, checkpoint_root=tmp_path_factory.mktemp("ckpt")) for e in engines)
    tc = bf16.create_lora_training_client("tiny", rank=8, seed=3)
    randomize_adapter(tc, seed=3, scale=0.2)
    reference = fp32.create_lora_training_client("tiny", rank=8, seed=3)
    reference.adapter.load_state_dict(tc.adapter.state_dict())
    yield tc, reference
    for e in engines:
        e.close()


def _logprobs(client, tokens: list[int], n_prompt: int) -> np.ndarray:
    out = client.forward([make_datum(tokens)], "cross_entropy").result()
    return out.loss_fn_outputs[0]["logprobs"].to_numpy()[n_prompt - 1:]


def test_bf16_sampler_is_as_close_to_fp32_as_the_trainer(clients):
    tc, reference = clients
    assert tc.base.dtype == torch.bfloat16
    sampler = tc.save_weights_and_get_sampling_client()
    assert {p.dtype for p in sampler.adapter.parameters()} == {torch.bfloat16}
    without_lora = reference.service.create_lora_training_client("tiny", rank=8)  # B = 0: the base model
    err_sampler, err_trainer, lora_effect = [], [], []
    for i, prompt in enumerate(PROMPTS):
        res = sampler.sample(types.ModelInput.from_ints(prompt), 4,
                             types.SamplingParams(max_tokens=24, seed=i, stop=[])).result()
        for seq in res.sequences:
            tokens = prompt + list(seq.tokens)
            exact = _logprobs(reference, tokens, len(prompt))
            err_sampler.append(np.abs(np.asarray(seq.logprobs) - exact))
            err_trainer.append(np.abs(_logprobs(tc, tokens, len(prompt)) - exact))
            lora_effect.append(np.abs(_logprobs(without_lora, tokens, len(prompt)) - exact))
    sampler_mean = float(np.concatenate(err_sampler).mean())
    trainer_mean = float(np.concatenate(err_trainer).mean())
    effect = float(np.concatenate(lora_effect).mean())
    assert sampler_mean < 0.2 and trainer_mean < 0.2, (sampler_mean, trainer_mean)
    assert sampler_mean <= 1.5 * trainer_mean + 0.01, (sampler_mean, trainer_mean)
    assert effect > 5 * sampler_mean, (effect, sampler_mean)  # the adapter is applied, not lost in rounding


def test_bf16_training_keeps_fp32_adapter_and_optimizer_state(clients):
    tc, reference = clients
    data = [make_datum(PROMPTS[0] + [1, 2, 3, 4, 5, 6])]
    before = {k: v.clone() for k, v in tc.adapter.state_dict().items()}
    loss = tc.forward_backward(data, "cross_entropy").result().metrics["loss:sum"]
    tc.optim_step(types.AdamParams(learning_rate=1e-3)).result()
    assert np.isfinite(loss)
    assert {p.dtype for p in tc.adapter.parameters()} == {torch.float32}
    moments = [t for s in tc._optimizer.torch.state.values() for t in s.values() if torch.is_tensor(t) and t.dim() > 0]
    assert moments and {t.dtype for t in moments} == {torch.float32}
    after = tc.adapter.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)  # every A and B moved
