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

import os

# Intel MKL's fastest CPU paths make a matmul row's last bits depend on memory alignment and on the
# matrix's row count; its conditional numerical reproducibility (read at MKL's first call, so before
# any model is loaded) removes both for 4+ rows, at no measurable cost. Set MKL_CBWR to override.
os.environ.setdefault("MKL_CBWR", "AUTO")

from .clients import ServiceClient  # noqa: E402 - after MKL_CBWR
from .engine import Engine  # noqa: E402
from .futures import LocalFuture  # noqa: E402
from .rest import RestClient  # noqa: E402
from .sampling import SamplingClient  # noqa: E402
from .training import TrainingClient  # noqa: E402

__all__ = ["ServiceClient", "TrainingClient", "SamplingClient", "RestClient", "Engine", "LocalFuture"]
