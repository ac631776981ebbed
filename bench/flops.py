"""Model FLOPs utilisation (MFU) of a training step.

Model FLOPs follow the usual convention (PaLM, appendix B): per trained token ``6 * N`` for the
matmul weights ``N`` (decoder linears + lm_head; embedding lookups excluded) plus
``12 * layers * heads * head_dim * seq_len`` for attention, summed over the batch's real tokens.
``6N`` counts the weight-gradient matmuls that a frozen LoRA base skips, so it is a convention
comparable across systems rather than the work actually done (about ``4N``). Padding is never
counted: the baseline pays for its pads in time, not in credited FLOPs.
"""

from __future__ import annotations

import torch

from .models import BenchModel

# Dense bf16 tensor-core peaks (no sparsity), by substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def train_flops(model: BenchModel, seq_lengths: list[int]) -> float:
    """Model FLOPs of forward + backward over sequences of these (trained) lengths."""
    attn_width = model.heads * model.head_dim
    return float(sum(6 * model.linear_params * n + 12 * model.layers * attn_width * n * n for n in seq_lengths))


def default_peak_flops(device: torch.device) -> float | None:
    """The device's peak bf16 FLOP/s if known (CUDA only; ``--peak-tflops`` overrides)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_FLOPS.items():
        if key in name:
            return peak
    return None


def mfu(flops: float, seconds: float, peak_flops: float | None) -> float | None:
    return None if not peak_flops or seconds <= 0 else flops / seconds / peak_flops


# HBM peaks in bytes/s, by substring of torch.cuda.get_device_name() (H100: the SXM part).
PEAK_HBM_BYTES = {"H200": 4.8e12, "H100": 3.35e12, "A100": 2.0e12, "L40S": 0.864e12, "A10G": 0.6e12}


def default_peak_bandwidth(device_name: str) -> float | None:
    return next((peak for key, peak in PEAK_HBM_BYTES.items() if key in device_name), None)


def decode_step_bytes(model: BenchModel, rows: int, context: int, dtype_bytes: int = 2) -> float:
    """Bytes one decode step must read at least: every matmul weight once, plus each row's KV cache."""
    kv = rows * context * model.layers * 2 * model.kv_heads * model.head_dim
    return float((model.linear_params + kv) * dtype_bytes)


def bandwidth_fraction(model: BenchModel, tokens_per_s: float, rows: int, context: int,
                       peak_bytes_per_s: float | None, dtype_bytes: int = 2) -> float | None:
    """The fraction of the HBM bandwidth limit that ``tokens_per_s`` of ``rows``-row decoding reaches."""
    if not peak_bytes_per_s:
        return None
    steps_per_s = tokens_per_s / rows
    return steps_per_s * decode_step_bytes(model, rows, context, dtype_bytes) / peak_bytes_per_s
