"""A run started through the SDK in another process, killed, and resumed by a script that finds it
over REST (its user metadata, its last checkpoint) with the same weights and optimizer state
(acceptance 4 of the Tinker-surface issue)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import tinker
from tinker import types
from tinker_flows import API_KEY, datum

TRAINER = textwrap.dedent("""
    import json, sys, time
    import tinker
    from tinker import types

    base_url, api_key, tag = sys.argv[1:4]
    service = tinker.ServiceClient(base_url=base_url, api_key=api_key)
    tc = service.create_lora_training_client(base_model="tiny", rank=8, seed=7,
                                             user_metadata={"experiment": tag}).result()
    tok = tc.get_tokenizer()
    def datum(tokens):
        return types.Datum(model_input=types.ModelInput.from_ints(tokens[:-1]),
                           loss_fn_inputs=dict(target_tokens=tokens[1:], weights=[1.0] * (len(tokens) - 1)))
    data = [datum(tok.encode(f"{a}+{b}={a + b}\\n")) for a, b in [(12, 34), (7, 58), (40, 41), (23, 9)]]
    report = {}
    for step in range(1, 6):
        tc.forward_backward(data, "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=1e-2)).result()
        if step == 3:
            tc.save_state("step_3", user_metadata={"step": "3"}).result()
            report["at_checkpoint"] = tc.forward(data, "cross_entropy").result().metrics["loss:sum"]
        if step == 4:  # what one more step from the checkpoint gives (AdamW state included)
            report["one_step_later"] = tc.forward(data, "cross_entropy").result().metrics["loss:sum"]
    print(json.dumps(report), flush=True)
    time.sleep(600)  # "still training" until the test kills it
""")


def find_and_resume(base_url: str, tag: str) -> tuple[tinker.TrainingClient, str, dict[str, str]]:
    """The resume script: the newest run tagged ``tag`` (REST: training runs and their user metadata),
    from its last training checkpoint, with its optimizer state."""
    service = tinker.ServiceClient(base_url=base_url, api_key=API_KEY)
    rest = service.create_rest_client()
    runs = rest.list_training_runs(limit=100).result().training_runs
    tagged = [r for r in runs if (r.user_metadata or {}).get("experiment") == tag]
    assert len(tagged) == 1, [r.user_metadata for r in runs]
    run = rest.get_training_run(tagged[0].training_run_id).result()
    assert run.last_checkpoint is not None
    checkpoint = run.last_checkpoint
    assert rest.get_training_run_by_tinker_path(checkpoint.tinker_path).result().training_run_id == run.training_run_id
    resumed = service.create_training_client_from_state_with_optimizer(checkpoint.tinker_path).result()
    return resumed, checkpoint.tinker_path, checkpoint.user_metadata or {}


def test_an_interrupted_sdk_run_resumes_from_its_rest_metadata_with_the_same_weights(server):
    env = {**os.environ, "TINKER_TELEMETRY": "0"}
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER, server.url, API_KEY, "resume-demo"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = trainer.stdout.readline() if trainer.stdout else ""
        assert line, trainer.stderr.read() if trainer.stderr else "no output"
        report = json.loads(line)
    finally:
        trainer.send_signal(signal.SIGKILL)  # interrupted mid-run: no close, no final save
        trainer.wait(30)
    time.sleep(0.1)

    resumed, path, checkpoint_metadata = find_and_resume(server.url, "resume-demo")
    assert path.endswith("/weights/step_3") and checkpoint_metadata == {"step": "3"}
    tok = resumed.get_tokenizer()
    data = [datum(tok.encode(f"{a}+{b}={a + b}\n")) for a, b in [(12, 34), (7, 58), (40, 41), (23, 9)]]
    assert resumed.forward(data, "cross_entropy").result().metrics["loss:sum"] == pytest.approx(
        report["at_checkpoint"], rel=1e-5)
    resumed.forward_backward(data, "cross_entropy")
    resumed.optim_step(types.AdamParams(learning_rate=1e-2)).result()
    assert resumed.forward(data, "cross_entropy").result().metrics["loss:sum"] == pytest.approx(
        report["one_step_later"], rel=1e-5)
