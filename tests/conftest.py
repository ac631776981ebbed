"""Shared test setup: a private cache for the embedded model and checkpoints, and the shared/ dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Keep tests hermetic: build the tiny model and write checkpoints under a temp dir unless the
# caller chose a cache (reusing one across runs saves the few seconds the first build takes).
os.environ.setdefault("COOKBOOK_CACHE", tempfile.mkdtemp(prefix="cookbook-test-cache-"))
# No test uses the network: a model id that is not a local directory fails at once instead of
# after the hub client's minute of retries (set before anything imports huggingface_hub).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite runs on CPU unless told otherwise: COOKBOOK_DEVICE=cuda runs the backend and supervised
# tests on a GPU, COOKBOOK_DTYPE=float32|bfloat16 picks the precision (default: fp32 on CPU, bf16 on
# CUDA). fp32 comparisons use fp32 tolerances (so TF32 is off); low-precision ones are bounded by the
# rounding noise measured in the same run (tests/backend/backend_helpers.py, NOISE_FACTOR).
os.environ.setdefault("COOKBOOK_DEVICE", "cpu")
if os.environ["COOKBOOK_DEVICE"].startswith("cuda"):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

SHARED_DIR = Path(__file__).resolve().parent.parent.parent / "shared"
