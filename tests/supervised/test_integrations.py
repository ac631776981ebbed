"""Backend pass-through and optional wandb logging, without network."""

from __future__ import annotations

import sys
import types as pytypes

import tinker

from cookbook.backend import service_client
from cookbook.config import make_service
from cookbook.metric_logger import MetricLogger
from cookbook.run_dir import RunDir
from cookbook.supervised.train import TrainConfig


def test_backend_tinker_and_base_url_reach_the_sdk(monkeypatch):
    made = {}

    class FakeServiceClient:
        def __init__(self, **kwargs):
            made.update(kwargs)

    monkeypatch.setattr(tinker, "ServiceClient", FakeServiceClient)
    client = make_service(TrainConfig(backend="tinker", base_url="http://127.0.0.1:9"))
    assert isinstance(client, FakeServiceClient) and made == {"base_url": "http://127.0.0.1:9"}
    assert isinstance(service_client("tinker", api_key="tml-x"), FakeServiceClient) and made["api_key"] == "tml-x"


def test_wandb_logging_when_asked(monkeypatch, tmp_path):
    calls = {"init": None, "log": [], "finish": 0}

    class Run:
        def log(self, data, step):
            calls["log"].append((step, data))

        def finish(self):
            calls["finish"] += 1

    def init(**kwargs):
        calls["init"] = kwargs
        return Run()

    monkeypatch.setitem(sys.modules, "wandb", pytypes.SimpleNamespace(init=init))
    run = RunDir(tmp_path / "run", {"lr": 1})
    logger = MetricLogger(run, wandb_project="proj", wandb_name="n1")
    logger.log(0, {"train/loss": 1.5})
    logger.close()
    assert calls["init"]["project"] == "proj" and calls["init"]["config"] == {"lr": 1}
    assert calls["log"] == [(0, {"train/loss": 1.5})] and calls["finish"] == 1
    assert run.metrics() == [{"step": 0, "train/loss": 1.5}]


def test_no_wandb_unless_asked(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # importing it would fail
    logger = MetricLogger(RunDir(tmp_path / "run", {}))
    logger.log(3, {"x": 1.0})
    logger.close()
