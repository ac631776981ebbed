"""The preference loop (DPO and its variants, KTO, online DPO), written only against the Tinker primitives.

Data: items whose first two entries are Datums with weights 1 on the completion tokens: a pair
(chosen, rejected) of one comparison (``cookbook.preference.data``), or for KTO a
:class:`cookbook.preference.data.KTOItem` (an example, its mismatched KL datum, whether it is
desirable). A completion's sequence logprob is the weight-masked sum of its token logprobs. The
loss is ``loss_type``'s (``cookbook.preference.losses``: ``dpo`` by default; ``cdpo``, ``robust``,
``ipo``, ``hinge``; the reference-free ``simpo``, ``cpo``, ``orpo``; ``kto``), for DPO::

    chosen_reward   = beta * (policy(chosen)   - reference(chosen))
    rejected_reward = beta * (policy(rejected) - reference(rejected))
    loss = mean over pairs of -logsigmoid(chosen_reward - rejected_reward)
           + sft_weight * (NLL of the chosen tokens / number of chosen tokens)

The policy logprobs are differentiable through ``forward_backward_custom``. The reference is a
frozen sampling client: the base model (no adapter), ``reference_path``, or by default the weights
the run starts from (``load_checkpoint_path`` when set). Reference logprobs are computed once per
item (``SamplingClient.compute_logprobs``, all of a batch submitted together) and cached by item
index, never recomputed; the reference-free losses (and ``reference_free=True``) make no such call.
Metrics per step: ``dpo/loss``, ``dpo/accuracy`` (chosen reward > rejected reward), ``dpo/margin``
(their mean difference), ``dpo/chosen_reward``, ``dpo/rejected_reward`` (KTO: ``dpo/kl`` and the
rewards), ``learning_rate``, ``optim/grad_norm``; with held-out pairs, the DPO metrics of the
implicit reward as ``test/...`` plus ``test/policy_accuracy`` (raw policy logprob of chosen >
rejected) every ``eval_every`` steps and at the end.

``reference_free=True`` drops the reference (its logprobs are 0): with ``beta = 1`` the DPO loss is
then the Bradley-Terry loss ``-logsigmoid(score(chosen) - score(rejected))`` of a score that is the
datums' weighted logprob, which is how ``cookbook.preference.reward_model`` trains a reward model.

Batches come from :class:`StaticBatches` (shuffled epochs of a fixed list of items) or any other
:class:`Batches`: online DPO (``cookbook.preference.online.OnlineBatches``) samples each step's
pairs from the current weights and labels them with a grader or a reward model.

Shape as in the SFT loop, through the run skeleton (``cookbook.run``): step N+1 is submitted before
step N is awaited; hooks and checkpoints wait for the step they follow; rerunning with the same
``log_path`` resumes from the last checkpoint. Clients are typed by ``cookbook.primitives``;
imports no other loop.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import chz
import torch
from tinker import APIFuture, types

from cookbook.completers import sampling_client
from cookbook.config import LoopConfig, make_service
from cookbook.errors import ConfigError, DataError
from cookbook.hooks import Hook, SamplingHookFn
from cookbook.pipeline import Submitted, step_metrics
from cookbook.preference.losses import LossSettings, PreferenceLossName, kto_objective, pair_objective
from cookbook.primitives import SamplingClient, ServiceClient, TrainingClient
from cookbook.run import Run, RunResult
from cookbook.seeds import shuffled

Pair = tuple[types.Datum, types.Datum]  # (chosen, rejected)
Item = tuple[Any, ...]  # a Pair, or a KTOItem (datum, kl_datum, desirable): two datums first
References = list[tuple[float, float]]  # the reference's sequence logprobs of each item's two datums


def _loss_settings(config: Any, attr: str) -> None:
    """chz validator: the loss options are consistent (checked when the command line is parsed)."""
    config.loss_settings()


@chz.chz
class DPOConfig(LoopConfig):
    """Everything the preference loop needs that is not data (shared settings: ``cookbook.config.LoopConfig``)."""

    loss_type: PreferenceLossName = "dpo"  # the loss (cookbook.preference.losses)
    beta: float = 0.1  # strength of the implicit KL constraint to the reference (orpo: the odds-ratio weight)
    label_smoothing: float = chz.field(default=0.0, validator=_loss_settings)  # cdpo / robust: label noise
    simpo_gamma: float = 0.5  # simpo: the target reward margin
    desirable_weight: float = 1.0  # kto: the weight of desirable examples ...
    undesirable_weight: float = 1.0  # ... and of undesirable ones
    sft_weight: float = 0.0  # weight of an added NLL term on the chosen completions (0: none)
    batch_size: int = 16  # comparisons (or KTO examples) per step
    num_epochs: int = 1
    reference_path: str | None = None  # reference weights; default: load_checkpoint_path, else the base model
    reference_base: bool = False  # use the base model (no adapter) as the reference even with load_checkpoint_path
    reference_free: bool = False  # no reference (logprobs 0): Bradley-Terry on the policy's logprobs when beta = 1
    log_path: str = "runs/dpo"

    def loss_settings(self) -> LossSettings:
        return LossSettings(self.loss_type, self.beta, self.label_smoothing, self.simpo_gamma, self.sft_weight,
                            self.desirable_weight, self.undesirable_weight)

    @property
    def uses_reference(self) -> bool:
        return not (self.reference_free or self.loss_settings().reference_free)


@dataclass
class DPOResult(RunResult):
    reference_calls: int = 0  # compute_logprobs requests made (2 per item whose reference was needed)


def sequence_logprob(logprobs: torch.Tensor | Sequence[float], datum: types.Datum) -> torch.Tensor:
    """Weight-masked sum of a datum's per-target-token logprobs (differentiable for a tensor)."""
    lp = torch.as_tensor(logprobs) if not isinstance(logprobs, torch.Tensor) else logprobs
    return (lp * _weights(datum, lp)).sum()


def _weights(datum: types.Datum, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(datum.loss_fn_inputs["weights"].to_numpy(), dtype=like.dtype, device=like.device)


def dpo_objective(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                  ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean DPO loss over pairs (1-D tensors of sequence logprobs) and its metrics (no prefix)."""
    ones = torch.ones_like(policy_chosen)
    return pair_objective(LossSettings("dpo", beta), policy_chosen, policy_rejected, ref_chosen, ref_rejected,
                          ones, ones)


def preference_loss_fn(settings: LossSettings, references: References, items: Sequence[Item] = ()):
    """The ``forward_backward_custom`` loss of a batch laid out ``[a_0, b_0, a_1, b_1, ...]`` (the two datums of
    each item: chosen and rejected, or for KTO the example and its KL datum, ``items`` giving the labels),
    with the items' reference sequence logprobs ``[(a, b), ...]``; metrics as ``dpo/<name>``."""
    def loss_fn(data: Sequence[types.Datum], logprobs: Sequence[torch.Tensor]):
        seq = torch.stack([sequence_logprob(lp, d) for lp, d in zip(logprobs, data)])
        tokens = torch.stack([_weights(d, seq).sum() for d in data])
        ref = torch.tensor(references, dtype=seq.dtype, device=seq.device).reshape(-1, 2)
        if settings.loss_type == "kto":
            desirable = torch.tensor([bool(item[2]) for item in items], device=seq.device)
            loss, metrics = kto_objective(settings, seq[0::2], ref[:, 0], seq[1::2], ref[:, 1], desirable)
        else:
            loss, metrics = pair_objective(settings, seq[0::2], seq[1::2], ref[:, 0], ref[:, 1], tokens[0::2],
                                           tokens[1::2])
        return loss, {f"dpo/{k}": v for k, v in metrics.items()}
    return loss_fn


def dpo_loss_fn(references: References, beta: float, sft_weight: float = 0.0):
    """:func:`preference_loss_fn` of the DPO loss (``beta``, ``sft_weight``) on pairs."""
    return preference_loss_fn(LossSettings("dpo", beta, sft_weight=sft_weight), references)


class ReferenceLogprobs:
    """Reference sequence logprobs of items' two datums, computed once per item index and cached.

    A datum's full sequence is its input tokens plus its last target (the datums are next-token data);
    ``compute_logprobs`` of that sequence, shifted by one, lines up with the targets.
    """

    def __init__(self, client: SamplingClient, pairs: Sequence[Item]) -> None:
        self.client, self.pairs = client, pairs
        self.cache: dict[int, tuple[float, float]] = {}
        self.calls = 0

    def _submit(self, datum: types.Datum) -> APIFuture[list[float | None]]:
        self.calls += 1
        tokens = datum.model_input.to_ints() + [int(datum.loss_fn_inputs["target_tokens"].to_numpy()[-1])]
        return self.client.compute_logprobs(types.ModelInput.from_ints(tokens))

    @staticmethod
    def _sum(future: APIFuture[list[float | None]], datum: types.Datum) -> float:
        logprobs = [0.0 if x is None else x for x in future.result()[1:]]
        return float(sequence_logprob(torch.tensor(logprobs, dtype=torch.float64), datum))

    def get(self, indices: Sequence[int]) -> References:
        """(first, second) reference logprobs of the items at ``indices``; missing ones are all submitted
        before any is awaited."""
        missing = sorted({i for i in indices if i not in self.cache})
        futures = {i: (self._submit(self.pairs[i][0]), self._submit(self.pairs[i][1])) for i in missing}
        for i, (first, second) in futures.items():
            self.cache[i] = (self._sum(first, self.pairs[i][0]), self._sum(second, self.pairs[i][1]))
        return [self.cache[i] for i in indices]


class NoReference:
    """The reference of reference-free training: every sequence logprob is 0, nothing is computed."""

    calls = 0

    def get(self, indices: Sequence[int]) -> References:
        return [(0.0, 0.0)] * len(indices)


class Batches(Protocol):
    """Where each step's items come from: ``batch(step, training_client)`` -> the items, their reference
    logprobs and metrics to log (``training_client`` holds the weights of every step before ``step``)."""

    steps: int  # the steps of one pass (an epoch, or the whole run)

    def batch(self, step: int, training_client: TrainingClient) -> tuple[list[Item], References, dict[str, float]]:
        ...

    @property
    def reference_calls(self) -> int: ...


class StaticBatches:
    """``num_epochs`` passes over fixed ``items`` in full batches, each epoch shuffled with (seed, epoch);
    reference logprobs from ``reference`` (:class:`ReferenceLogprobs` or :class:`NoReference`)."""

    def __init__(self, items: Sequence[Item], reference: ReferenceLogprobs | NoReference, *, batch_size: int,
                 num_epochs: int, seed: int) -> None:
        if not items:
            raise DataError("no training comparisons")
        if not 1 <= batch_size <= len(items):
            raise ConfigError(f"batch_size {batch_size} must be between 1 and the number of comparisons "
                              f"({len(items)})")
        self.items, self.reference, self.batch_size, self.seed = items, reference, batch_size, seed
        self.per_epoch = len(items) // batch_size
        self.steps = self.per_epoch * num_epochs

    def batch(self, step: int, training_client: TrainingClient) -> tuple[list[Item], References, dict[str, float]]:
        indices = batch_order(len(self.items), self.batch_size, self.seed, step // self.per_epoch)[
            step % self.per_epoch]
        return [self.items[i] for i in indices], self.reference.get(indices), {}

    @property
    def reference_calls(self) -> int:
        return self.reference.calls


def preference_metrics(training_client: TrainingClient, pairs: Sequence[Pair],
                       reference: ReferenceLogprobs | NoReference,
                       beta: float, batch_size: int = 32) -> dict[str, float]:
    """Held-out DPO metrics under the current weights (``forward``: no gradients), and
    ``policy_accuracy``: the fraction of pairs whose policy logprob of chosen exceeds rejected's."""
    refs = reference.get(range(len(pairs)))
    futures = [training_client.forward([d for pair in pairs[i: i + batch_size] for d in pair], "cross_entropy")
               for i in range(0, len(pairs), batch_size)]
    data = [d for pair in pairs for d in pair]
    outputs = [o["logprobs"].to_numpy() for f in futures for o in f.result().loss_fn_outputs]
    seq = torch.stack([sequence_logprob(torch.tensor(lp, dtype=torch.float64), d) for lp, d in zip(outputs, data)])
    ref = torch.tensor(refs, dtype=torch.float64)
    _, metrics = dpo_objective(seq[0::2], seq[1::2], ref[:, 0], ref[:, 1], beta)
    metrics["policy_accuracy"] = float((seq[0::2] > seq[1::2]).sum()) / len(pairs)
    return metrics


def preference_hook(pairs: Sequence[Pair], reference: ReferenceLogprobs | NoReference, beta: float,
                    every: int | None = None) -> Hook:
    """A training-client hook with :func:`preference_metrics` of held-out ``pairs``."""
    return Hook(lambda tc: preference_metrics(tc, pairs, reference, beta), client="training", every=every)


def reference_client(config: DPOConfig, service: ServiceClient) -> SamplingClient:
    """The frozen reference: ``reference_path``, else ``load_checkpoint_path`` (unless ``reference_base``),
    else the base model with no adapter."""
    path = config.reference_path or (None if config.reference_base else config.load_checkpoint_path)
    return sampling_client(service, config.base_model, path)


def references_for(config: DPOConfig, reference: SamplingClient | None, service: ServiceClient,
                   items: Sequence[Item]) -> ReferenceLogprobs | NoReference:
    """The items' reference logprobs: none when the loss needs no reference, else ``reference``'s (default:
    :func:`reference_client`'s)."""
    if not config.uses_reference:
        return NoReference()
    return ReferenceLogprobs(reference or reference_client(config, service), items)


@functools.lru_cache(maxsize=2)
def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch of full batches of pair indices, shuffled with (seed, epoch) (cached: every step of an
    epoch reads it)."""
    order = shuffled(n, seed, epoch)
    return [order[i: i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def static_batches(config: DPOConfig, items: Sequence[Item], reference: SamplingClient | None,
                   service: ServiceClient) -> StaticBatches:
    """The :class:`StaticBatches` of ``items`` (checked against ``loss_type``) with their reference logprobs."""
    if items and (config.loss_type == "kto") != (len(items[0]) == 3):
        raise DataError(f"loss_type={config.loss_type}: KTO trains on KTO examples "
                        "(cookbook.preference.data.labeled_to_items), every other loss on (chosen, rejected) pairs")
    return StaticBatches(items, references_for(config, reference, service, items), batch_size=config.batch_size,
                         num_epochs=config.num_epochs, seed=config.seed)


def train(
    config: DPOConfig,
    train_pairs: Sequence[Item] | Batches,
    test_pairs: Sequence[Pair] = (),
    *,
    eval_hooks: Mapping[str, Hook | SamplingHookFn] | None = None,
    run_config: dict[str, Any] | None = None,
    service: ServiceClient | None = None,
    reference: SamplingClient | None = None,
) -> DPOResult:
    """Train a LoRA adapter with ``config.loss_type`` on ``train_pairs`` (items, or a :class:`Batches` such as
    online DPO's); ``test_pairs``' preference metrics are logged as ``test/...`` with the ``eval_hooks``;
    ``reference`` replaces :func:`reference_client`'s (unused by reference-free losses); ``run_config`` and
    ``service``: see :class:`cookbook.run.Run`."""
    service = service or make_service(config)
    batches = static_batches(config, train_pairs, reference, service) if isinstance(train_pairs, Sequence) \
        else train_pairs
    total = min(batches.steps, config.max_steps) if config.max_steps is not None else batches.steps
    run = Run(config, total, hooks=eval_hooks, service=service, run_config=run_config, description="dpo",
              show={"dpo/loss": "loss {:.4f}", "tokens_per_s": "{:,.0f} tok/s"})
    test_ref = references_for(config, reference, service, test_pairs)
    if test_pairs:
        run.hooks.add("test", preference_hook(test_pairs, test_ref, config.beta))
    if run.finished:
        return DPOResult(**vars(run.result), reference_calls=batches.reference_calls + test_ref.calls)

    def submit(step: int) -> tuple[Submitted, dict[str, float]]:
        items, refs, extra = batches.batch(step, run.training_client)
        data = [d for item in items for d in item[:2]]
        adam = config.adam_params(step, total)
        loss_fn = preference_loss_fn(config.loss_settings(), refs, items)
        return Submitted(step, adam, run.training_client.forward_backward_custom(data, loss_fn),
                         run.training_client.optim_step(adam), sum(d.model_input.length for d in data)), extra

    def finish(submitted: tuple[Submitted, dict[str, float]]) -> None:
        done, extra = submitted
        out, opt = done.fb.result(), done.opt.result()
        run.end_step(done.step, {**{k: v for k, v in out.metrics.items() if k.startswith("dpo/")}, **extra,
                                 **step_metrics(done, opt, run.step_seconds())})

    with run:
        run.pipelined(submit, finish)
    return DPOResult(**vars(run.result), reference_calls=batches.reference_calls + test_ref.calls)
