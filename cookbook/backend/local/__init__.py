"""The reference backend: the Tinker primitives in-process on PyTorch with LoRA.

Modules: ``clients`` (the service client, the public entry point), ``training`` and ``sampling``
(the training and sampling clients), ``rest`` (the REST calls: training runs, checkpoints,
sessions), ``registry`` (run records on disk, sessions in memory), ``engine`` (the worker that owns
the device, orders requests and coalesces sampling), ``model`` (loading a base model, chunked
log-probabilities), ``lora`` (adapters on a frozen shared base), ``losses``, ``optimizer`` (AdamW,
Dimuon), ``stability`` (stability records for ``stable_reinforce``), ``sampler`` (batched prefill +
KV-cache decoding), ``prompt_scores`` (what a sample request asks about its prompt), ``kv_cache``,
``decode_step`` (the fast single-token step for Llama-family models), ``static_decode`` (that step
on fixed-shape buffers, captured as CUDA graphs on CUDA) with ``lora_pool`` (adapters in fixed device
slots), ``memory`` (micro-batch planning), ``checkpoints``, ``export`` (merged Hugging Face model /
PEFT adapter), ``validation`` and ``errors``. Of the rest of ``cookbook`` it imports only the leaves
``cookbook.tiny`` (the embedded model) and ``cookbook.errors`` (its typed errors are user errors).
Only ``cookbook.backend`` imports this package (tests and ``bench`` may too).
"""

from .clients import ServiceClient
from .engine import Engine
from .futures import LocalFuture
from .rest import RestClient
from .sampling import SamplingClient
from .training import TrainingClient

__all__ = ["ServiceClient", "TrainingClient", "SamplingClient", "RestClient", "Engine", "LocalFuture"]
