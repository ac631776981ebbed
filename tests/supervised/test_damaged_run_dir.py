"""A run directory damaged the ways a crash or a full disk damages it (a cut-off last line of either
JSONL file, an empty or cut-off ``config.json``, a cut-off adapter file, a missing checkpoint
directory) is repaired on the rerun, with a warning: the run resumes from the last good checkpoint
and ends with the weights of an undamaged run, or, when it had finished, stays finished."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file

import cookbook
from cookbook.backend.local import checkpoints
from cookbook.supervised.data import conversation_to_datum
from cookbook.supervised.train import TrainConfig, train
from cookbook.tasks import AdditionTask
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer

STEPS, EVERY = 6, 2  # checkpoints after steps 2, 4 and 6 (final)


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def data():
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    return [conversation_to_datum(c, renderer, "last_assistant_message")
            for c in AdditionTask().conversations(48, seed=0)]


def _config(path):
    return TrainConfig(lora_rank=4, learning_rate=5e-3, batch_size=8, max_steps=STEPS, save_every=EVERY,
                       eval_every=5, log_path=str(path), progress=False)


def _weights(service, result):
    return load_file(checkpoints.resolve(result.final_state_path, service.checkpoint_root) / "adapter.safetensors")




def _hook(crash: bool):
    def hook(sampler):
        if crash:
            raise Crash("simulated interruption")
        return {"ok": 1.0}
    return {"h": hook}


@pytest.fixture(scope="module")
def made(data, tmp_path_factory):
    """(checkpoint root, {finished: run directory}, weights of the finished run): a finished run, and one
    that crashed at step 5's eval, after the checkpoints of steps 2 and 4."""
    root = tmp_path_factory.mktemp("made")
    service = cookbook.service_client(checkpoint_root=root / "ckpt")
    runs = {True: root / "finished", False: root / "unfinished"}
    result = train(_config(runs[True]), data, eval_hooks=_hook(False), service=service)
    with pytest.raises(Crash):
        train(_config(runs[False]), data, eval_hooks=_hook(True), service=service)
    return root / "ckpt", runs, _weights(service, result)


def _cut_last_line(file):
    text = file.read_text()
    last = text.rstrip("\n").rfind("\n") + 1
    file.write_text(text[:last + (len(text) - last) // 2])


def _records(run):
    import json
    return [json.loads(line) for line in (run / "checkpoints.jsonl").read_text().splitlines()]


def _last_checkpoint_dir(service, run):
    return checkpoints.resolve(_records(run)[-1]["state_path"], service.checkpoint_root)


DAMAGES = {
    "checkpoints.jsonl cut off": lambda service, run: _cut_last_line(run / "checkpoints.jsonl"),
    "metrics.jsonl cut off": lambda service, run: _cut_last_line(run / "metrics.jsonl"),
    "config.json empty": lambda service, run: (run / "config.json").write_text(""),
    "config.json cut off": lambda service, run: (run / "config.json").write_text(
        (run / "config.json").read_text()[:40]),
    "adapter cut off": lambda service, run: (_last_checkpoint_dir(service, run) / "adapter.safetensors").write_bytes(
        (_last_checkpoint_dir(service, run) / "adapter.safetensors").read_bytes()[:100]),
    "checkpoint directory missing": lambda service, run: shutil.rmtree(_last_checkpoint_dir(service, run)),
}
WARNS = {"checkpoints.jsonl cut off": "cut off", "metrics.jsonl cut off": "cut off",
         "config.json empty": "empty or cut off", "config.json cut off": "empty or cut off",
         "adapter cut off": "cannot be loaded", "checkpoint directory missing": "cannot be loaded"}


@pytest.mark.parametrize("finished", [True, False], ids=["finished", "unfinished"])
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_run_directory_is_repaired_and_the_run_ends_as_if_undamaged(
        damage, finished, made, data, tmp_path, caplog):
    root, runs, undamaged = made
    run = runs[finished]
    shutil.copytree(root, tmp_path / "ckpt")  # a copy of the runs' checkpoints and of the run directory,
    service = cookbook.service_client(checkpoint_root=tmp_path / "ckpt")  # damaged without touching them
    run = shutil.copytree(run, tmp_path / "run")
    DAMAGES[damage](service, run)

    with caplog.at_level(logging.WARNING, logger="cookbook.run"):
        result = train(_config(run), data, eval_hooks=_hook(False), service=service)
    assert WARNS[damage] in caplog.text
    assert WARNS[damage] in (run / "log.txt").read_text()

    weights = _weights(service, result)
    assert weights.keys() == undamaged.keys() and all(torch.equal(weights[k], undamaged[k]) for k in weights)
    assert result.steps == STEPS and _records(run)[-1]["final"]
    rows = [m["step"] for m in result.metrics]
    if damage == "metrics.jsonl cut off":  # the cut-off row is lost (a log, not state): steps 5 / 3
        lost = STEPS - 1 if finished else 3
        assert rows == [s for s in range(STEPS) if s != lost]
    else:
        assert rows == list(range(STEPS))
