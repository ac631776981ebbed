"""The reference backend: the Tinker primitives in-process on PyTorch with LoRA.

Modules: ``clients`` (service / training / sampling clients, the public surface), ``engine``
(the worker that owns the device, orders requests and coalesces sampling), ``model`` (loading a
base model, chunked log-probabilities), ``lora`` (adapters on a frozen shared base), ``losses``,
``sampler`` (batched prefill + KV-cache decoding), ``kv_cache``, ``decode_step`` (the fast
single-token step for Llama-family models), ``checkpoints``, ``export`` (merged Hugging
Face model / PEFT adapter), ``validation`` and ``errors``, ``tiny`` (the embedded model).
Nothing here imports from the rest of ``cookbook``.
"""

from .clients import SamplingClient, ServiceClient, TrainingClient
from .engine import Engine
from .futures import LocalFuture

__all__ = ["ServiceClient", "TrainingClient", "SamplingClient", "Engine", "LocalFuture"]
