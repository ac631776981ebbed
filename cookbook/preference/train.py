"""The DPO loop, written only against the Tinker primitives.

Data: pairs of Datums (chosen, rejected) of one comparison (``cookbook.preference.data``), weights 1
on the completion tokens. A completion's sequence logprob is the weight-masked sum of its token
logprobs. Per step, over the batch's pairs::

    chosen_reward   = beta * (policy(chosen)   - reference(chosen))
    rejected_reward = beta * (policy(rejected) - reference(rejected))
    loss = mean over pairs of -logsigmoid(chosen_reward - rejected_reward)
           + sft_weight * (NLL of the chosen tokens / number of chosen tokens)

The policy logprobs are differentiable through ``forward_backward_custom``. The reference is a
frozen sampling client: the base model (no adapter), ``reference_path``, or by default the weights
the run starts from (``load_checkpoint_path`` when set). Reference logprobs are computed once per
comparison (``SamplingClient.compute_logprobs``, all pairs of a batch submitted together) and cached
by example index, never recomputed. Metrics per step: ``dpo/loss``, ``dpo/accuracy`` (chosen reward
> rejected reward), ``dpo/margin`` (their mean difference), ``dpo/chosen_reward``,
``dpo/rejected_reward``, ``learning_rate``, ``optim/grad_norm``; with held-out pairs, the same as
``test/...`` plus ``test/policy_accuracy`` (raw policy logprob of chosen > rejected) every
``eval_every`` steps and at the end.

``reference_free=True`` drops the reference (its logprobs are 0 and no ``compute_logprobs`` call is
made): with ``beta = 1`` the loss is then the Bradley-Terry loss ``-logsigmoid(score(chosen) -
score(rejected))`` of a score that is the datums' weighted logprob, which is how
``cookbook.preference.reward_model`` trains a reward model with this loop.

Shape as in the SFT loop, through the run skeleton (``cookbook.run``): step N+1 is submitted before
step N is awaited; hooks and checkpoints wait for the step they follow; rerunning with the same
``log_path`` resumes from the last checkpoint. Clients are typed by ``cookbook.primitives``;
imports no other loop.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import chz
import torch
from tinker import APIFuture, types

from cookbook.completers import sampling_client
from cookbook.config import LoopConfig
from cookbook.errors import ConfigError, DataError
from cookbook.hooks import Hook, SamplingHookFn
from cookbook.pipeline import Submitted, step_metrics
from cookbook.primitives import SamplingClient, ServiceClient, TrainingClient
from cookbook.run import Run, RunResult
from cookbook.seeds import shuffled

Pair = tuple[types.Datum, types.Datum]  # (chosen, rejected)


@chz.chz
class DPOConfig(LoopConfig):
    """Everything the DPO loop needs that is not data (shared settings: ``cookbook.config.LoopConfig``)."""

    beta: float = 0.1  # strength of the implicit KL constraint to the reference
    sft_weight: float = 0.0  # weight of an added NLL term on the chosen completions (0: pure DPO)
    batch_size: int = 16  # comparisons per step
    num_epochs: int = 1
    reference_path: str | None = None  # reference weights; default: load_checkpoint_path, else the base model
    reference_base: bool = False  # use the base model (no adapter) as the reference even with load_checkpoint_path
    reference_free: bool = False  # no reference (logprobs 0): Bradley-Terry on the policy's logprobs when beta = 1
    log_path: str = "runs/dpo"


@dataclass
class DPOResult(RunResult):
    reference_calls: int = 0  # compute_logprobs requests made (2 per comparison whose reference was needed)


def sequence_logprob(logprobs: torch.Tensor | Sequence[float], datum: types.Datum) -> torch.Tensor:
    """Weight-masked sum of a datum's per-target-token logprobs (differentiable for a tensor)."""
    lp = torch.as_tensor(logprobs) if not isinstance(logprobs, torch.Tensor) else logprobs
    weights = torch.as_tensor(datum.loss_fn_inputs["weights"].to_numpy(), dtype=lp.dtype, device=lp.device)
    return (lp * weights).sum()


def dpo_objective(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
                  ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean DPO loss over pairs (1-D tensors of sequence logprobs) and its metrics (no prefix)."""
    chosen_reward = beta * (policy_chosen - ref_chosen)
    rejected_reward = beta * (policy_rejected - ref_rejected)
    margin = chosen_reward - rejected_reward
    loss = -torch.nn.functional.logsigmoid(margin).mean()
    metrics = {"loss": float(loss.detach()), "accuracy": float((margin > 0).sum()) / margin.numel(),
               "margin": float(margin.detach().mean()), "chosen_reward": float(chosen_reward.detach().mean()),
               "rejected_reward": float(rejected_reward.detach().mean())}
    return loss, metrics


def dpo_loss_fn(references: Sequence[tuple[float, float]], beta: float, sft_weight: float = 0.0):
    """The ``forward_backward_custom`` loss of a batch laid out ``[chosen_0, rejected_0, chosen_1, ...]``
    with the pairs' reference sequence logprobs ``[(chosen, rejected), ...]``."""
    def loss_fn(data: Sequence[types.Datum], logprobs: Sequence[torch.Tensor]):
        seq = torch.stack([sequence_logprob(lp, d) for lp, d in zip(logprobs, data)])
        ref = torch.tensor(references, dtype=seq.dtype, device=seq.device)
        loss, metrics = dpo_objective(seq[0::2], seq[1::2], ref[:, 0], ref[:, 1], beta)
        out = {f"dpo/{k}": v for k, v in metrics.items()}
        if sft_weight:
            chosen_tokens = sum(float(d.loss_fn_inputs["weights"].to_numpy().sum()) for d in data[0::2])
            nll = -seq[0::2].sum() / max(chosen_tokens, 1e-9)
            loss = loss + sft_weight * nll
            out["dpo/sft_nll"] = float(nll.detach())
        return loss, out
    return loss_fn


class ReferenceLogprobs:
    """Reference sequence logprobs of pairs, computed once per pair index and cached.

    A datum's full sequence is its input tokens plus its last target (the datums are next-token data);
    ``compute_logprobs`` of that sequence, shifted by one, lines up with the targets.
    """

    def __init__(self, client: SamplingClient, pairs: Sequence[Pair]) -> None:
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

    def get(self, indices: Sequence[int]) -> list[tuple[float, float]]:
        """(chosen, rejected) reference logprobs of the pairs at ``indices``; missing ones are all
        submitted before any is awaited."""
        missing = sorted({i for i in indices if i not in self.cache})
        futures = {i: (self._submit(self.pairs[i][0]), self._submit(self.pairs[i][1])) for i in missing}
        for i, (chosen, rejected) in futures.items():
            self.cache[i] = (self._sum(chosen, self.pairs[i][0]), self._sum(rejected, self.pairs[i][1]))
        return [self.cache[i] for i in indices]


class NoReference:
    """The reference of ``reference_free`` training: every sequence logprob is 0, nothing is computed."""

    calls = 0

    def get(self, indices: Sequence[int]) -> list[tuple[float, float]]:
        return [(0.0, 0.0)] * len(indices)


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


def _references(config: DPOConfig, reference: SamplingClient | None, service: ServiceClient,
                train_pairs: Sequence[Pair], test_pairs: Sequence[Pair]
                ) -> tuple[ReferenceLogprobs | NoReference, ReferenceLogprobs | NoReference]:
    """The train and test pairs' reference logprobs: none with ``reference_free``, else ``reference``'s
    (default: :func:`reference_client`'s)."""
    if config.reference_free:
        return NoReference(), NoReference()
    reference = reference or reference_client(config, service)
    return ReferenceLogprobs(reference, train_pairs), ReferenceLogprobs(reference, test_pairs)


@functools.lru_cache(maxsize=2)
def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch of full batches of pair indices, shuffled with (seed, epoch) (cached: every step of an
    epoch reads it)."""
    order = shuffled(n, seed, epoch)
    return [order[i: i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def train(
    config: DPOConfig,
    train_pairs: Sequence[Pair],
    test_pairs: Sequence[Pair] = (),
    *,
    eval_hooks: Mapping[str, Hook | SamplingHookFn] | None = None,
    run_config: dict[str, Any] | None = None,
    service: ServiceClient | None = None,
    reference: SamplingClient | None = None,
) -> DPOResult:
    """Train a LoRA adapter with DPO on ``train_pairs``; ``test_pairs``' preference metrics are logged as
    ``test/...`` with the ``eval_hooks``; ``reference`` replaces :func:`reference_client`'s (unused with
    ``reference_free``); ``run_config`` and ``service``: see :class:`cookbook.run.Run`."""
    if not train_pairs:
        raise DataError("no training comparisons")
    if not 1 <= config.batch_size <= len(train_pairs):
        raise ConfigError(f"batch_size {config.batch_size} must be between 1 and the number of comparisons "
                          f"({len(train_pairs)})")
    per_epoch = len(train_pairs) // config.batch_size
    total = per_epoch * config.num_epochs
    total = min(total, config.max_steps) if config.max_steps is not None else total
    run = Run(config, total, hooks=eval_hooks, service=service, run_config=run_config, description="dpo",
              show={"dpo/loss": "loss {:.4f}", "tokens_per_s": "{:,.0f} tok/s"})
    train_ref, test_ref = _references(config, reference, run.service, train_pairs, test_pairs)
    if test_pairs:
        run.hooks.add("test", preference_hook(test_pairs, test_ref, config.beta))
    if run.finished:
        return DPOResult(**vars(run.result), reference_calls=train_ref.calls + test_ref.calls)

    def submit(step: int) -> Submitted:
        indices = batch_order(len(train_pairs), config.batch_size, config.seed, step // per_epoch)[step % per_epoch]
        data = [d for i in indices for d in train_pairs[i]]
        adam = config.adam_params(step, total)
        loss_fn = dpo_loss_fn(train_ref.get(indices), config.beta, config.sft_weight)
        return Submitted(step, adam, run.training_client.forward_backward_custom(data, loss_fn),
                         run.training_client.optim_step(adam), sum(d.model_input.length for d in data))

    def finish(done: Submitted) -> None:
        out, opt = done.fb.result(), done.opt.result()
        run.end_step(done.step, {**{k: v for k, v in out.metrics.items() if k.startswith("dpo/")},
                                 **step_metrics(done, opt, run.step_seconds())})

    with run:
        run.pipelined(submit, finish)
    return DPOResult(**vars(run.result), reference_calls=train_ref.calls + test_ref.calls)
