"""The fast single-token decode step equals decoding through the model's own forward.

Architectures are built locally with random weights and saved in Hugging Face format (the tiny
model's tokenizer), so the load-by-path code path runs too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from backend_helpers import DEVICE, randomize_adapter
from tinker import types

from cookbook.backend.local import Engine, ServiceClient
from cookbook.backend.local.decode_step import DecodeStep
from cookbook.tiny import tiny_model_dir

SMALL = dict(vocab_size=263, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256, eos_token_id=0, tie_word_embeddings=False)
CONFIGS = {
    "llama": lambda: transformers.LlamaConfig(**SMALL),
    "qwen2": lambda: transformers.Qwen2Config(**SMALL),  # q/k/v biases
    "qwen3": lambda: transformers.Qwen3Config(head_dim=16, **SMALL),  # per-head q/k norms
    "mistral": lambda: transformers.MistralConfig(sliding_window=None, **SMALL),
}
# Prompts of different lengths: the batch is left-padded, so attention masks are exercised.
PROMPTS = [[104, 101, 108, 108, 111, 32, 119], [49, 43, 49, 61], [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """An engine of its own, so that these models do not join the shared test engine's."""
    engine = Engine(str(DEVICE), "float32")  # fp32 tolerances on any device
    yield ServiceClient(engine=engine, checkpoint_root=tmp_path_factory.mktemp("checkpoints"))
    engine.close()


def _save(config: transformers.PretrainedConfig, directory) -> str:
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # random weights large enough that the distributions are far from uniform
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    model.save_pretrained(directory)
    transformers.AutoTokenizer.from_pretrained(tiny_model_dir()).save_pretrained(directory)
    return str(directory)


def _sample_all(clients, max_tokens: int = 12):
    """Greedy and seeded temperature-1 samples of every prompt from every client, all coalesced."""
    futures = []
    for sc in clients:
        for i, prompt in enumerate(PROMPTS):
            for temperature in (0.0, 1.0):
                params = types.SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=i, stop=[])
                futures.append(sc.sample(types.ModelInput.from_ints(prompt), 2, params))
    return [[(list(s.tokens), np.asarray(s.logprobs)) for s in f.result().sequences] for f in futures]


@pytest.mark.parametrize("fused_attention", [False, True], ids=["matmul-attention", "sdpa"])
@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_fast_decode_equals_model_forward(service, tmp_path, monkeypatch, arch, fused_attention):
    path = _save(CONFIGS[arch](), tmp_path / arch)
    tc = service.create_lora_training_client(path, rank=4, seed=1)
    randomize_adapter(tc, seed=1, scale=0.3)
    clients = [tc.save_weights_and_get_sampling_client(), service.create_sampling_client(base_model=path)]
    base = tc.base
    assert isinstance(base.decode_step, DecodeStep)
    monkeypatch.setattr(base, "static_decoder", None)  # the eager decode with and without DecodeStep
    monkeypatch.setattr(base.decode_step, "fused_attention", fused_attention)  # CPU default: matmul; CUDA: sdpa

    fast = _sample_all(clients)
    monkeypatch.setattr(base, "decode_step", None)
    reference = _sample_all(clients)

    worst = 0.0
    for fast_seqs, ref_seqs in zip(fast, reference):
        for (f_tokens, f_lp), (r_tokens, r_lp) in zip(fast_seqs, ref_seqs):
            assert f_tokens == r_tokens
            worst = max(worst, float(np.abs(f_lp - r_lp).max()))
    assert worst < 1e-4, worst  # fp32 rounding of differently ordered reductions
    # the adapter changes the samples (so the comparison covers the LoRA path)
    assert fast[0] != fast[2 * len(PROMPTS)]


def test_unsupported_architectures_decode_through_the_model(service, tmp_path):
    sliding = transformers.MistralConfig(sliding_window=64, **SMALL)
    model = transformers.AutoModelForCausalLM.from_config(sliding)
    assert DecodeStep.for_model(model) is None
    gpt2 = transformers.GPT2Config(vocab_size=263, n_embd=64, n_layer=2, n_head=4, n_positions=256, eos_token_id=0)
    path = _save(gpt2, tmp_path / "gpt2")
    sc = service.create_sampling_client(base_model=path)
    assert sc.base.decode_step is None
    res = sc.sample(types.ModelInput.from_ints(PROMPTS[0]), 2,
                    types.SamplingParams(max_tokens=8, temperature=0.0, stop=[])).result()
    assert [len(s.tokens) for s in res.sequences] == [8, 8]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_fused_norms_equal_the_models_norm_modules(arch, dtype):
    """The step's fused RMSNorm against each architecture's own module: the same formula in the
    same rounding order, so bitwise equal where F.rms_norm decomposes (CPU); fp32 rounding of a
    fused reduction elsewhere."""
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[arch]()).to(DEVICE, dtype)
    step = DecodeStep.for_model(model)
    assert step is not None and step.fused_norms
    norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
    assert len(norms) == (4 if arch == "qwen3" else 2) * SMALL["num_hidden_layers"] + 1
    for module in norms:
        with torch.no_grad():
            module.weight.normal_(1.0, 0.5)
            x = torch.randn(3, 1, *module.weight.shape, device=DEVICE).mul_(4).to(dtype)
            ours, theirs = step.norm(module, x), module(x)
        assert ours.dtype == theirs.dtype == dtype
        if DEVICE.type == "cpu":
            assert torch.equal(ours, theirs)
        else:
            torch.testing.assert_close(ours, theirs, atol=0, rtol=1e-5 if dtype == torch.float32 else 8e-3)
    unfused = DecodeStep(model.get_decoder(), fused_norms=False)
    tokens, positions = torch.tensor([5, 9], device=DEVICE), torch.tensor([[0], [0]], device=DEVICE)
    cache = [transformers.DynamicCache(config=model.config) for _ in range(2)]
    with torch.no_grad():
        fused_out = step(tokens, positions, cache[0], None)
        unfused_out = unfused(tokens, positions, cache[1], None)
    if DEVICE.type == "cpu":
        assert torch.equal(fused_out, unfused_out)
    else:
        torch.testing.assert_close(fused_out, unfused_out, atol=1e-4 if dtype == torch.float32 else 5e-2, rtol=0)


def test_a_norm_of_another_kind_runs_its_own_module():
    step = DecodeStep.__new__(DecodeStep)
    step.fused_norms = True
    layer_norm = torch.nn.LayerNorm(8)
    x = torch.randn(2, 1, 8)
    assert torch.equal(step.norm(layer_norm, x), layer_norm(x))  # not an RMSNorm: the module's own forward
