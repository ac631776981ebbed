"""The SFT loop with ``backend=tinker base_url=...`` trains through the server (acceptance 2)."""

from __future__ import annotations

import pytest
from tinker_flows import API_KEY

from cookbook.hooks import accuracy_hook
from cookbook.supervised.data import conversation_to_datum
from cookbook.supervised.train import TrainConfig, train
from cookbook.tasks import AdditionTask
from cookbook.tokenizer_utils import get_tokenizer
from renderers import get_renderer

TIMING = {"tokens_per_s", "step_time_s"}


def test_sft_recipe_trains_through_the_server_like_in_process(server, local_service, tmp_path, monkeypatch):
    monkeypatch.setenv("TINKER_API_KEY", API_KEY)
    renderer = get_renderer("tiny", get_tokenizer("tiny"))
    task = AdditionTask()
    data = [conversation_to_datum(c, renderer, "last_assistant_message") for c in task.conversations(40, seed=0)]
    hooks = {"acc": accuracy_hook(task, task.problems(4, seed=1), renderer, max_tokens=8)}

    def run(name: str, **kw):
        config = TrainConfig(lora_rank=8, learning_rate=5e-3, batch_size=8, max_steps=4, eval_every=2, save_every=2,
                             log_path=str(tmp_path / name), progress=False, **kw)
        return train(config, data[:32], data[32:], eval_hooks=hooks, **({"service": local_service} if not kw else {}))

    remote = run("remote", backend="tinker", base_url=server.url)
    local = run("local")
    assert remote.final_state_path.startswith("tinker://") and remote.final_sampler_path.startswith("tinker://")
    assert [r["step"] for r in remote.metrics] == list(range(4))
    worst = max(abs(got[k] - want[k]) / max(1.0, abs(want[k]))
                for got, want in zip(remote.metrics, local.metrics) for k in want.keys() - TIMING)
    print(f"SFT through the server vs in-process: max relative metric difference {worst:.1e}")
    for got, want in zip(remote.metrics, local.metrics):
        for key in want.keys() - TIMING:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
    assert "test/nll" in remote.metrics[-1] and "acc/accuracy" in remote.metrics[-1]
    assert remote.metrics[-1]["train/loss"] < remote.metrics[0]["train/loss"]

    again = run("remote", backend="tinker", base_url=server.url)  # finished: loads the final state from the server
    assert again.steps == 4 and again.training_client is not None
