from __future__ import annotations

import pytest
import cookbook


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    return cookbook.service_client("local", checkpoint_root=tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def tokenizer(service):
    return service.create_sampling_client(base_model="tiny").get_tokenizer()


