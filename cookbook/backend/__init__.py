"""Where the primitives run.

``service_client(backend="local")`` returns the in-process reference backend
(:mod:`cookbook.backend.local`); ``service_client("tinker", base_url=...)`` returns the official
``tinker.ServiceClient`` for the hosted service or any Tinker-compatible server. Everything above
this package talks to the returned client only through the Tinker API.
"""

from __future__ import annotations

from typing import Any

BACKENDS = ("local", "tinker")


def service_client(backend: str = "local", **kwargs: Any) -> Any:
    """Make a service client.

    Args:
        backend: ``"local"`` (default; kwargs: ``device``, ``dtype``, ``checkpoint_root``, ``engine``)
            or ``"tinker"`` (kwargs go to ``tinker.ServiceClient``: ``base_url``, ``api_key``, ...).
    """
    if backend == "local":
        from .local import ServiceClient

        return ServiceClient(**kwargs)
    if backend == "tinker":
        import tinker

        return tinker.ServiceClient(**kwargs)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
