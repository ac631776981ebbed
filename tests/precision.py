"""The device and precision the suite runs in: ``COOKBOOK_DEVICE`` / ``COOKBOOK_DTYPE`` choose them
(tests/conftest.py pins CPU unless told otherwise)."""

from __future__ import annotations

import torch

from cookbook.backend.local.model import resolve_device, resolve_dtype

DEVICE = resolve_device(None)
DTYPE = resolve_dtype(None, DEVICE)
LOW_PRECISION = DTYPE != torch.float32
