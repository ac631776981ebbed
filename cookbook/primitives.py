"""The seam: the Tinker client interface as ``typing.Protocol``s, and one helper for both client styles.

Loops, evals and servers type their clients against these protocols, never against a backend's
classes; both the local backend's clients and the official ``tinker`` SDK's clients fit them.
Only the methods the cookbook calls are listed (with ``tinker.types`` in their signatures): code
that starts calling another method adds it here, and ``tests/test_primitives.py`` checks that both
implementations have every method listed.

Client factories return a client (local backend) or a future of one (the SDK); :func:`ready`
accepts both. Every operation returns an ``APIFuture`` (``.result()``, or :func:`result_async`
without blocking an event loop).

A leaf: imports ``tinker`` only (``torch`` and ``transformers`` for type checking).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar, Union, cast, runtime_checkable

from tinker import APIFuture, types

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

C = TypeVar("C")
T = TypeVar("T")
ClientOrFuture: TypeAlias = Union[C, APIFuture[C]]  # noqa: UP007 - what a client factory returns, either style
# forward_backward_custom's loss: (data, per-datum target logprobs) -> (scalar loss, metrics)
CustomLossFn = Callable[[list[types.Datum], list["torch.Tensor"]], tuple["torch.Tensor", dict[str, float]]]


@runtime_checkable
class SamplingClient(Protocol):
    """Samples from one set of weights (a base model, or a snapshot of a training client's adapter)."""

    def sample(self, prompt: types.ModelInput, num_samples: int, sampling_params: types.SamplingParams,
               include_prompt_logprobs: bool = False,
               topk_prompt_logprobs: int = 0) -> APIFuture[types.SampleResponse]: ...

    def compute_logprobs(self, prompt: types.ModelInput) -> APIFuture[list[float | None]]: ...


@runtime_checkable
class TrainingClient(Protocol):
    """One LoRA training run: requests run in submission order; gradients accumulate until ``optim_step``."""

    def forward(self, data: list[types.Datum], loss_fn: types.LossFnType,
                loss_fn_config: Mapping[str, float | str] | None = None) -> APIFuture[types.ForwardBackwardOutput]: ...

    def forward_backward(self, data: list[types.Datum], loss_fn: types.LossFnType,
                         loss_fn_config: Mapping[str, float | str] | None = None
                         ) -> APIFuture[types.ForwardBackwardOutput]: ...

    def forward_backward_custom(self, data: list[types.Datum], loss_fn: CustomLossFn
                                ) -> APIFuture[types.ForwardBackwardOutput]: ...

    def optim_step(self, optim_params: types.AdamParams) -> APIFuture[types.OptimStepResponse]: ...

    def save_state(self, name: str) -> APIFuture[types.SaveWeightsResponse]: ...

    def save_weights_for_sampler(self, name: str) -> APIFuture[types.SaveWeightsForSamplerResponse]: ...

    def save_weights_and_get_sampling_client(self, name: str | None = None, retry_config: object = None,
                                             record_stability_info: bool = False) -> ClientOrFuture[SamplingClient]: ...

    def get_tokenizer(self) -> PreTrainedTokenizerBase: ...


@runtime_checkable
class ServiceClient(Protocol):
    """Makes training and sampling clients (``cookbook.service_client(backend)`` returns one)."""

    def create_lora_training_client(self, base_model: str, rank: int = 32,
                                    seed: int | None = None) -> ClientOrFuture[TrainingClient]: ...

    def create_training_client_from_state(self, path: str) -> ClientOrFuture[TrainingClient]: ...

    def create_training_client_from_state_with_optimizer(self, path: str) -> ClientOrFuture[TrainingClient]: ...

    def create_sampling_client(self, model_path: str | None = None,
                               base_model: str | None = None) -> ClientOrFuture[SamplingClient]: ...


def ready(client: ClientOrFuture[C]) -> C:
    """The client itself, whichever style the factory has: a client (its ``.result()`` is itself),
    the SDK's future of a client (``.result()`` waits for it), or a plain object with no ``.result``."""
    result = getattr(client, "result", None)
    return cast(C, result() if callable(result) else client)


async def result_async(future: APIFuture[T]) -> T:
    """A future's result without blocking the event loop (``result_async``, or ``await`` on the future)."""
    wait = getattr(future, "result_async", None)
    return await (wait() if callable(wait) else future)


def max_context_length(service: object, base_model: str) -> int | None:
    """``base_model``'s context length as the service's ``get_server_capabilities`` reports it, in either
    client style; None when the service does not say (or has no such method)."""
    ask = getattr(service, "get_server_capabilities", None)
    try:
        capabilities = ready(ask()) if callable(ask) else None
    except Exception:  # noqa: BLE001 - optional information: callers then let the backend check lengths
        return None
    return next((m.max_context_length for m in getattr(capabilities, "supported_models", None) or []
                 if m.model_name == base_model and m.max_context_length), None)
