"""Shared test setup: a private cache for the embedded model and checkpoints, and the shared/ dir."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Keep tests hermetic: build the tiny model and write checkpoints under a temp dir unless the
# caller chose a cache (reusing one across runs saves the few seconds the first build takes).
os.environ.setdefault("COOKBOOK_CACHE", tempfile.mkdtemp(prefix="cookbook-test-cache-"))
# The numerical tolerances (1e-5 logprobs, bitwise resume) are for fp32 on CPU; a GPU run of the
# suite (bf16) would need its own tolerances, so the suite pins the device unless told otherwise.
os.environ.setdefault("COOKBOOK_DEVICE", "cpu")

SHARED_DIR = Path(__file__).resolve().parent.parent.parent / "shared"
