"""One decoding step of a Llama-style decoder, called module by module.

A single-token step of a transformers decoder spends most of its time in Python bookkeeping
(attention-mask building, cache and keyword plumbing, output objects): on the tiny model at batch
1, about 1 ms per layer for a few microseconds of arithmetic. For the architectures whose decoder
layers this module reproduces (:data:`SUPPORTED_MODEL_TYPES`), :class:`DecodeStep` runs the same
submodules in a straight line: the model's own embedding, norms, projections (so LoRA routing
applies), rotary embedding function and MLP, with attention over the preallocated KV cache. The
result equals the model's forward (tested); other architectures decode through the model's forward.

RMSNorms (four per Qwen3 layer, two elsewhere, and the final one) run as ``F.rms_norm`` on the
fp32 input, cast back and times the weight: the transformers formula in the same rounding order
(bitwise equal on CPU, tested), in one fused kernel where torch has one (CUDA) instead of the
module's six to eight (cast, square, mean, add, rsqrt, multiply, cast, multiply). A decode step
costs about one launch per kernel, and the norms were half of a layer's kernels
(``bench/RESULTS.md``, GPU suite); ``fused_norms=False`` calls the modules (the ablation in
``bench/static_decode.py``).

Attention for the single query token: ``scaled_dot_product_attention`` on CUDA (fused kernels);
on CPU two matmuls and a softmax, which measured 2.3x faster than PyTorch's CPU flash kernel for
one query token (batch 64, 128 cached positions).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache

# Decoder layers of these transformers model types are pre-norm residual blocks
# x + attn(norm(x)); x + mlp(norm(x)) with rotary attention (Qwen3 adds per-head q/k norms).
SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
# Their RMSNorm classes, whose forward is weight * (x32 * rsqrt(mean(x32^2) + eps)).to(dtype)
# (the same source in each), so the fused norm reproduces them.
RMS_NORM_CLASSES = frozenset({"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm"})


class LayerCache(Protocol):
    def update(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's keys and values; return every cached position's (the window attended to)."""
        ...


class StepCache(Protocol):
    """What the step uses of a KV cache: a transformers ``Cache``, or the static decoder's window."""

    @property
    def layers(self) -> Sequence[LayerCache]: ...


class DecodeStep:
    """Advances every row by one token: input ids [B], positions [B, 1] -> final hidden [B, H]."""

    def __init__(self, body: Any, *, fused_norms: bool = True) -> None:
        self.body = body  # the model's decoder (an nn.Module: submodules reached by name)
        self.fused_norms = fused_norms
        attn = self.body.layers[0].self_attn
        self.head_dim: int = attn.head_dim
        self.kv_heads: int = body.config.num_key_value_heads
        self.qk_norm = hasattr(attn, "q_norm")
        attention_module: Any = inspect.getmodule(type(attn))  # the model's modeling_*.py
        self.apply_rotary = attention_module.apply_rotary_pos_emb
        device = next(body.parameters()).device
        self.fused_attention = device.type != "cpu"

    @classmethod
    def for_model(cls, model: Any) -> "DecodeStep | None":
        """A step function for ``model``, or None when its architecture is not one of ours."""
        if getattr(model.config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
            return None
        body = model.get_decoder()
        for layer in body.layers:
            attn = layer.self_attn
            # Qwen2/3 set the window per layer; Mistral applies the config's window to every layer.
            window = getattr(attn, "sliding_window", getattr(model.config, "sliding_window", None))
            if window is not None or not hasattr(attn, "scaling"):
                return None
        return cls(body)

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, cache: StepCache | Cache,
                 mask: torch.Tensor | None) -> torch.Tensor:
        """``mask``: bool [B, 1, 1, L] over the cached positions after this step (None: all valid)."""
        batch, d, kv_heads = tokens.shape[0], self.head_dim, self.kv_heads
        h = self.body.embed_tokens(tokens[:, None])
        cos, sin = self.body.rotary_emb(h, positions)
        bias = None  # additive mask for the matmul attention
        if mask is not None and not self.fused_attention:
            bias = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(~mask, float("-inf"))
        for layer, kv in zip(self.body.layers, cast(Sequence[LayerCache], cache.layers)):
            attn = layer.self_attn
            x = self.norm(layer.input_layernorm, h)
            q = attn.q_proj(x).view(batch, 1, -1, d)
            k = attn.k_proj(x).view(batch, 1, kv_heads, d)
            v = attn.v_proj(x).view(batch, 1, kv_heads, d)
            if self.qk_norm:
                q, k = self.norm(attn.q_norm, q), self.norm(attn.k_norm, k)
            q, k = self.apply_rotary(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
            keys, values = kv.update(k, v.transpose(1, 2))
            # One query token: fold the query heads that share a KV head into the query length.
            q = q.reshape(batch, kv_heads, -1, d)
            if self.fused_attention:
                out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=attn.scaling)
            else:
                out = _matmul_attention(q, keys, values, bias, attn.scaling)
            h = h + attn.o_proj(out.reshape(batch, 1, -1))
            h = h + layer.mlp(self.norm(layer.post_attention_layernorm, h))
        return self.norm(self.body.norm, h)[:, 0]

    def norm(self, module: Any, x: torch.Tensor) -> torch.Tensor:
        """``module(x)`` for one of the model's RMSNorms; fused (same formula) where it is a known one."""
        if not self.fused_norms or type(module).__name__ not in RMS_NORM_CLASSES:
            return module(x)
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=module.variance_epsilon)
        return module.weight * normed.to(x.dtype)


def _matmul_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, bias: torch.Tensor | None,
                      scale: float) -> torch.Tensor:
    """softmax(q k^T * scale + bias) v, the softmax in fp32 (as transformers' eager attention)."""
    scores = torch.matmul(q, keys.transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype), values)
