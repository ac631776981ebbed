"""Fixtures of the eval tests: the shared data folder, a short quickstart run, one compute thread."""

from __future__ import annotations

from pathlib import Path

import pytest
from trained_tiny import one_compute_thread, quickstart_run

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"{DATA_DIR} is absent")
    return DATA_DIR


@pytest.fixture(scope="module", autouse=True)
def _one_compute_thread():
    with one_compute_thread():
        yield


@pytest.fixture(scope="session")
def qs_run() -> Path:
    with one_compute_thread():
        return quickstart_run()
