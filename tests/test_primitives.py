"""The client protocols fit both implementations (local backend, tinker SDK); ``ready`` takes both styles."""

from __future__ import annotations

import inspect

import pytest
import tinker

import cookbook
from cookbook import primitives
from cookbook.backend import local

PAIRS = [
    (primitives.ServiceClient, local.ServiceClient, tinker.ServiceClient),
    (primitives.TrainingClient, local.TrainingClient, tinker.TrainingClient),
    (primitives.SamplingClient, local.SamplingClient, tinker.SamplingClient),
]


def protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(protocol).items()
            if callable(fn) and not name.startswith("_")}


@pytest.mark.parametrize("protocol,local_cls,sdk_cls", PAIRS, ids=lambda x: f"{x.__module__}.{x.__name__}")
def test_both_implementations_have_every_protocol_method(protocol, local_cls, sdk_cls):
    methods = protocol_methods(protocol)
    assert methods, protocol
    for impl in (local_cls, sdk_cls):
        for name, sig in methods.items():
            assert hasattr(impl, name), f"{impl.__qualname__} lacks {name}"
            params = inspect.signature(getattr(impl, name)).parameters
            takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
            for param in list(sig.parameters)[1:]:
                assert param in params or takes_kwargs, f"{impl.__qualname__}.{name} has no parameter {param}"
            ours = [p for p in sig.parameters.values() if p.name != "self" and p.default is p.empty]
            theirs = [p.name for p in params.values() if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
            assert [p.name for p in ours] == theirs[: len(ours)], f"{impl.__qualname__}.{name}: positional order"


def test_a_local_service_is_a_service_client_and_ready_accepts_both_styles():
    service = cookbook.service_client()
    assert isinstance(service, primitives.ServiceClient)
    sampler = service.create_sampling_client(base_model="tiny")
    assert isinstance(sampler, primitives.SamplingClient)
    assert primitives.ready(sampler) is sampler  # local style: the client (its .result() is itself)

    class FutureOfClient:  # SDK style: a future whose result is the client
        def result(self, timeout=None):
            return sampler

    assert primitives.ready(FutureOfClient()) is sampler
    plain = object()
    assert primitives.ready(plain) is plain  # a client without .result()
