"""A Tinker-compatible server on 127.0.0.1 (in this process, on a free port) for the SDK tests.

Server and in-process reference use fp32 on the suite's device, so their results can be compared
at 1e-5.
"""

from __future__ import annotations

import os

import pytest
import torch

import cookbook
from cookbook.backend.tinker_server import ServerConfig, ServerThread

os.environ.setdefault("TINKER_TELEMETRY", "0")


@pytest.fixture(scope="module", autouse=True)
def one_compute_thread():
    """The backend's engine computes with one thread while these tests run.

    Here the SDK's threads, the server's event loop and the engine share one process; on a 2-core
    machine the engine's spinning OpenMP worker starves them and steps take 10x longer. Results do
    not depend on it (server and in-process reference share the same engine)."""
    engine = cookbook.service_client("local", dtype="float32").engine
    previous = engine.call(torch.get_num_threads)
    engine.call(lambda: torch.set_num_threads(1))
    yield
    engine.call(lambda: torch.set_num_threads(previous))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    config = ServerConfig(port=0, dtype="float32", checkpoint_root=str(tmp_path_factory.mktemp("server-ckpt")),
                          long_poll_s=10, log_level="warning")
    with ServerThread(config) as running:
        yield running


@pytest.fixture(scope="module")
def local_service(tmp_path_factory):
    """The in-process reference backend the server's results are compared with."""
    return cookbook.service_client("local", dtype="float32", checkpoint_root=tmp_path_factory.mktemp("local-ckpt"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """``item.call_passed``: whether the test's body passed (``test_sdk_surface`` checks its claims then)."""
    outcome = yield
    if call.when == "call":
        item.call_passed = outcome.get_result().passed
