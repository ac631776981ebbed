"""The cookbook: composable pieces and generic loops over the Tinker primitives.

``cookbook.service_client()`` is the one entry point to a backend; see :mod:`cookbook.backend`.
"""

from .backend import service_client

__all__ = ["service_client"]
