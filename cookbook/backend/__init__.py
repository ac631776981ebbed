"""Where the primitives run.

``service_client(backend="local")`` returns the in-process reference backend
(:mod:`cookbook.backend.local`); ``service_client("tinker", base_url=...)`` returns the official
``tinker.ServiceClient`` for the hosted service or any Tinker-compatible server. Everything above
this package talks to the returned client only through the Tinker API (typed as
:class:`cookbook.primitives.ServiceClient`). This is the only module outside ``backend/local`` that
imports it: the local backend is loaded on first use, and :func:`export_checkpoint` is how the
``cookbook export`` command reaches the local checkpoint exporter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from cookbook.errors import ConfigError
from cookbook.primitives import ServiceClient

if TYPE_CHECKING:  # the local backend's own client types, for code in front of it (the Tinker server)
    from .local import SamplingClient as LocalSamplingClient  # noqa: F401
    from .local import ServiceClient as LocalServiceClient  # noqa: F401
    from .local import TrainingClient as LocalTrainingClient  # noqa: F401

BackendName = Literal["local", "tinker"]
BACKENDS: tuple[str, ...] = get_args(BackendName)


def service_client(backend: str = "local", **kwargs: Any) -> ServiceClient:
    """Make a service client.

    Args:
        backend: ``"local"`` (default; kwargs: ``device``, ``dtype``, ``checkpoint_root``, ``engine``)
            or ``"tinker"`` (kwargs go to ``tinker.ServiceClient``: ``base_url``, ``api_key``, ...).
    """
    if backend == "local":
        from .local import ServiceClient as LocalServiceClient

        return LocalServiceClient(**kwargs)
    if backend == "tinker":
        import tinker

        return tinker.ServiceClient(**kwargs)
    raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def export_checkpoint(checkpoint: str, *, merged: str | os.PathLike | None = None,
                      peft: str | os.PathLike | None = None,
                      checkpoint_root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Export a local checkpoint as a merged Hugging Face model and/or a PEFT adapter.

    Returns ``{"merged": dir, "peft": dir}`` for what was written. A checkpoint that does not exist
    raises ``CheckpointNotFoundError`` (a :class:`cookbook.errors.UserError`).
    """
    from .local.export import export_merged, export_peft

    root = Path(checkpoint_root) if checkpoint_root else None
    written: dict[str, Path] = {}
    if merged:
        written["merged"] = export_merged(checkpoint, merged, root=root)
    if peft:
        written["peft"] = export_peft(checkpoint, peft, root=root)
    return written
