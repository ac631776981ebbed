"""A KV cache whose buffers are allocated once for the whole generation.

The default ``DynamicCache`` concatenates every layer's keys and values each decode step (a full
copy per token); this cache writes the new step into a buffer sized for prompt + max_tokens and
hands attention a view of the filled part.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    capacity = 0  # positions per row, set by preallocated_cache()
    is_initialized: bool  # DynamicLayer's (annotated for the type checker, which does not read transformers)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.dtype, self.device = key_states.dtype, key_states.device
            batch, heads, _, dim = key_states.shape
            self._k = key_states.new_empty(batch, heads, max(self.capacity, key_states.shape[-2]), dim)
            self._v = value_states.new_empty(batch, value_states.shape[1], self._k.shape[2], value_states.shape[-1])
            self._len = 0
            self.is_initialized = True
        end = self._len + key_states.shape[-2]
        if end > self._k.shape[2]:  # more tokens than planned: grow (never expected in sampling)
            self._k = torch.cat([self._k, torch.empty_like(self._k)], dim=2)
            self._v = torch.cat([self._v, torch.empty_like(self._v)], dim=2)
        self._k[:, :, self._len:end] = key_states
        self._v[:, :, self._len:end] = value_states
        self._len = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, : self._len], self._v[:, :, : self._len]


def preallocated_cache(capacity: int) -> Cache:
    layer = type("PreallocatedLayer", (PreallocatedLayer,), {"capacity": capacity})
    return Cache(layer_class_to_replicate=layer)
