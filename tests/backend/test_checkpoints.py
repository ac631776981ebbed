"""Acceptance 4: exact resume, sampler checkpoints, merged Hugging Face and PEFT exports."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import peft
import pytest
import torch
import transformers
from backend_helpers import DEVICE, DTYPE, LOW_PRECISION, assert_close, make_datum
from tinker import types

from cookbook.backend.local import ServiceClient, errors
from recipes.__main__ import main as cli_main

SEQS = [[72, 101, 108, 108, 111, 33, 10], [49, 43, 50, 61, 51, 10], [100 + i for i in range(20)]]
ADAM = types.AdamParams(learning_rate=5e-3, weight_decay=0.01, grad_clip_norm=1.0)


def _train(tc, steps: int) -> None:
    data = [make_datum(s) for s in SEQS]
    for _ in range(steps):
        tc.forward_backward(data, "cross_entropy")
        step = tc.optim_step(ADAM)
    step.result()


def test_resume_with_optimizer_is_bitwise_exact(service):
    straight = service.create_lora_training_client("tiny", rank=8, seed=21)
    _train(straight, 5)

    first = service.create_lora_training_client("tiny", rank=8, seed=21)
    _train(first, 3)
    path = first.save_state("step3").result().path
    assert path.startswith("local://") and "/weights/step3" in path
    resumed = service.create_training_client_from_state_with_optimizer(path)
    _train(resumed, 2)

    expected, got = straight.adapter.state_dict(), resumed.adapter.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key

    # weights only (fresh optimizer) is a different trajectory
    fresh_opt = service.create_training_client_from_state(path)
    _train(fresh_opt, 2)
    assert any(not torch.equal(expected[k], v) for k, v in fresh_opt.adapter.state_dict().items())


def test_load_state_on_an_existing_client(service):
    source = service.create_lora_training_client("tiny", rank=8, seed=22)
    _train(source, 2)
    path = source.save_state("two").result().path
    target = service.create_lora_training_client("tiny", rank=8, seed=99)
    target.load_state_with_optimizer(path).result()
    _train(source, 1)
    _train(target, 1)
    for key, value in source.adapter.state_dict().items():
        assert torch.equal(value, target.adapter.state_dict()[key])


def test_save_state_refuses_to_overwrite_unless_asked(service):
    tc = service.create_lora_training_client("tiny", rank=4, seed=1)
    tc.save_state("same").result()
    with pytest.raises(errors.InvalidRequestError, match="exists"):
        tc.save_state("same").result()
    assert tc.save_state("same", overwrite=True).result().path.endswith("/weights/same")


def test_sampler_checkpoint_samples_like_the_snapshot(service):
    tc = service.create_lora_training_client("tiny", rank=8, seed=23)
    _train(tc, 3)
    path = tc.save_weights_for_sampler("s3").result().path
    assert "/sampler_weights/s3" in path
    snapshot = tc.save_weights_and_get_sampling_client()
    _train(tc, 2)  # must not affect either sampler
    from_path = service.create_sampling_client(model_path=path)
    also = tc.create_sampling_client(path)
    params = types.SamplingParams(max_tokens=12, temperature=0.0, stop=[])
    prompt = types.ModelInput.from_ints(SEQS[0][:3])
    outs = [c.sample(prompt, 1, params).result().sequences[0].tokens for c in (snapshot, from_path, also)]
    assert outs[0] == outs[1] == outs[2]
    with pytest.raises(errors.CheckpointNotFoundError):
        service.create_training_client_from_state_with_optimizer(path)  # sampler weights hold no optimizer


def _hf_logprobs(model, seq):
    logits = model(input_ids=torch.tensor([seq[:-1]], device=DEVICE)).logits[0].float()
    targets = torch.tensor(seq[1:], device=DEVICE)
    return torch.log_softmax(logits, -1).gather(-1, targets[:, None])[:, 0].detach().cpu().numpy()


def test_merged_and_peft_exports_reproduce_the_lora_model(service, tmp_path):
    tc = service.create_lora_training_client("tiny", rank=8, seed=24)
    _train(tc, 4)
    path = tc.save_state("export").result().path
    ours = tc.forward([make_datum(s) for s in SEQS], "cross_entropy").result()

    merged_dir, peft_dir = tmp_path / "merged", tmp_path / "peft"
    assert cli_main(["export", path, "--merged", str(merged_dir), "--peft", str(peft_dir),
                     "--checkpoint-root", str(service.checkpoint_root)]) == 0

    def load(dtype):
        merged = transformers.AutoModelForCausalLM.from_pretrained(merged_dir, dtype=dtype).to(DEVICE)
        base = transformers.AutoModelForCausalLM.from_pretrained(tc.base.location, dtype=dtype).to(DEVICE)
        return merged, peft.PeftModel.from_pretrained(base, peft_dir, autocast_adapter_dtype=False)

    assert transformers.AutoTokenizer.from_pretrained(merged_dir).encode("hi") == tc.get_tokenizer().encode("hi")
    assert json.loads((peft_dir / "adapter_config.json").read_text())["r"] == 8
    exact = load(torch.float32)
    peers = load(DTYPE) if LOW_PRECISION else (None, None)  # each export loaded in the run's dtype
    for seq, out in zip(SEQS, ours.loss_fn_outputs):
        for model, peer in zip(exact, peers):
            assert_close(out["logprobs"].to_numpy(), _hf_logprobs(model, seq), atol=1e-5,
                         peer=None if peer is None else _hf_logprobs(peer, seq))


def test_export_of_unknown_checkpoint_fails_cleanly(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "nope"), "--merged", str(tmp_path / "out")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unfinished_saves_of_killed_processes_are_removed_when_a_service_starts(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    weights = tmp_path / "run-1" / "weights"
    killed = weights / f".step_000004-{dead}-x1y2"  # a save cut off by SIGKILL: never renamed into place
    running = weights / f".step_000006-{os.getpid()}-z3"  # a save still in progress in a live process
    done = weights / "step_000002"
    for d in (killed, running, done):
        d.mkdir(parents=True)
        (d / "adapter.safetensors").write_bytes(b"partial")
    with caplog.at_level(logging.WARNING):
        ServiceClient(checkpoint_root=tmp_path)
    assert not killed.exists() and running.exists() and done.exists()
    assert str(killed) in caplog.text and "killed" in caplog.text
