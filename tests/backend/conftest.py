from __future__ import annotations

import pytest
from backend_helpers import LOW_PRECISION

import cookbook


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    return cookbook.service_client("local", checkpoint_root=tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def tokenizer(service):
    return service.create_sampling_client(base_model="tiny").get_tokenizer()


@pytest.fixture(scope="session")
def service_fp32(service, tmp_path_factory):
    """A service on the same device in fp32: the reference for low-precision comparisons."""
    if not LOW_PRECISION:
        return service
    return cookbook.service_client("local", dtype="float32", checkpoint_root=tmp_path_factory.mktemp("checkpoints32"))
