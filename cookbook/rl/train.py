"""The RL loop, written only against the Tinker primitives.

Per step (:func:`train_step`): a sampling client of the current weights rolls out the step's groups
of episodes (all concurrently), the episodes become token sequences with advantages (dropping
groups whose rewards are all equal, if asked), then ``forward_backward`` + ``optim_step`` in
``num_substeps`` minibatches. Each action token's advantage is::

    reward_coef * advantage(the episode's reward)  -  kl_penalty_coef * (log p_sampler - log p_reference)

(observation tokens get 0), where ``advantage_estimator`` is ``group_mean`` (the reward minus its
group's mean; default), ``group_std`` (GRPO), ``rloo`` or ``reinforce_pp`` (``cookbook.rl.data``),
and ``loss_normalization`` scales the token terms (``sum``, ``token_mean``, ``sequence_mean``).
DAPO's pieces are options (the ``configs/rl/dapo.toml`` preset sets them): clip-higher is
``loss_fn=ppo`` with a larger ``clip_high_threshold``; ``dynamic_sampling_rounds`` rolls out up to
that many more rounds of groups (the next steps' batches) while the batch has fewer mixed groups
than it was dealt, and trains on mixed groups only; ``loss_normalization=token_mean`` is the
token-level loss; ``overlong_buffer`` adds the soft overlong penalty to the rewards (a reply in
the last ``overlong_buffer`` fraction of ``max_tokens`` loses up to ``overlong_penalty``, linearly).
``env_step_timeout`` / ``rollout_timeout`` bound an env call / a group's rollout
(``cookbook.rl.rollouts``): a hung env fails its group, which ``on_rollout_error`` drops by default.
The reference is :meth:`RLConfig.kl_reference` (the base model or ``kl_reference_path``; none
without a penalty). On-policy distillation (``cookbook.distill``) is this
loop with the teacher as the reference, ``reward_coef`` 0 and constant-reward groups kept. The first
minibatch's forward pass scores the sampled tokens under the weights that sampled them, so the
sampler-vs-trainer logprob difference is logged every step at no extra cost.

Off-policy (``max_staleness = k > 0``): a background thread samples ahead while the trainer
trains; a batch is sampled with weights at most k optimizer steps older than the step that trains
on it (the sampler waits otherwise), and ``importance_sampling`` / ``ppo`` / ``gspo`` /
``stable_reinforce`` correct for the lag.

``loss_fn=gspo`` adds each datum's ``sequence_ratio_mask`` (its action tokens); ``loss_fn=stable_reinforce``
samples with ``record_stability_info=True`` and gives each datum the provenance of its tokens (the
sampled sequences' ids), from which the backend takes the behaviour logprobs it recorded.

Everything around the step (run directory, resume, hooks, logging, progress, checkpoints) is the run
skeleton's (``cookbook.run``). May import the shared layer, ``cookbook.rl.*`` and ``renderers``;
imports no other loop.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, get_args

import chz
import numpy as np

from cookbook import seeds
from cookbook.completers import sampling_client
from cookbook.config import LoopConfig
from cookbook.hooks import Hook, SamplingHookFn
from cookbook.lr_schedules import ScheduleName
from cookbook.primitives import SamplingClient, ServiceClient, TrainingClient, ready
from cookbook.rl import metrics as rl_metrics
from cookbook.rl.data import (
    AdvantageEstimator,
    LossNormalization,
    Reference,
    groups_to_sequences,
    is_constant,
    logprob_gap,
    normalize_token_advantages,
    sequence_sources,
    token_advantages,
    with_overlong_penalty,
)
from cookbook.rl.data import Sequence as RLSequence
from cookbook.rl.episode_log import EpisodeLog
from cookbook.rl.rollouts import OnError, RolloutSettings, rollout_batch
from cookbook.rl.types import RLDataset, TrajectoryGroup
from cookbook.run import Run, RunResult

LossName = Literal["importance_sampling", "ppo", "cispo", "dro", "gspo", "stable_reinforce"]
LOSSES: tuple[str, ...] = get_args(LossName)


@chz.chz
class RLConfig(LoopConfig):
    """Everything the RL loop needs besides the dataset (shared settings: ``cookbook.config.LoopConfig``)."""

    learning_rate: float = 1e-4
    lr_schedule: ScheduleName = "constant"
    max_tokens: int = 64  # sampled tokens per turn
    temperature: float = 1.0
    max_turns: int = 16
    max_episode_tokens: int | None = None
    loss_fn: LossName = "importance_sampling"
    clip_low_threshold: float | None = None  # ppo / cispo / gspo clipping (None: the loss's default)
    clip_high_threshold: float | None = None  # (stable_reinforce: its importance-weight cap)
    dro_beta: float | None = None
    stable_reinforce_kl_coeff: float | None = None  # stable_reinforce's kl_coeff (None: the loss's default)
    num_substeps: int = 1  # optimizer steps per batch (the batch split into this many minibatches)
    advantage_estimator: AdvantageEstimator = "group_mean"  # group_mean, group_std (GRPO), rloo, reinforce_pp
    loss_normalization: LossNormalization = "sum"  # sum over tokens, token_mean over the batch, sequence_mean
    remove_constant_reward_groups: bool = True
    dynamic_sampling_rounds: int = 0  # DAPO: up to this many more rounds of groups until the batch is all mixed
    overlong_buffer: float = 0.0  # DAPO: replies in this last fraction ...
    overlong_penalty: float = 1.0  # ... of max_tokens are penalised by up to this much reward (0: off)
    env_step_timeout: float | None = None  # seconds an env call may take; past it its group fails (on_rollout_error)
    rollout_timeout: float | None = None  # seconds a group's rollout may take
    reward_coef: float = 1.0  # advantage = reward_coef * the episode's advantage ...
    kl_penalty_coef: float = 0.0  # ... - coef * (log p_sampler - log p_reference) per action token
    kl_reference_path: str | None = None  # the reference policy's sampler weights (None: the base model)
    max_staleness: int = 0  # 0: sample with the current weights; k > 0: sampling runs up to k steps ahead
    on_rollout_error: OnError = "drop"
    log_groups: int = 2  # groups written to episodes.txt per step (0: none)
    log_path: str = "runs/rl"

    def loss_fn_config(self) -> dict[str, float] | None:
        config = {"clip_low_threshold": self.clip_low_threshold, "clip_high_threshold": self.clip_high_threshold,
                  "beta": self.dro_beta, "kl_coeff": self.stable_reinforce_kl_coeff}
        return {k: float(v) for k, v in config.items() if v is not None} or None

    def rollout_settings(self) -> RolloutSettings:
        return RolloutSettings(max_tokens=self.max_tokens, temperature=self.temperature, max_turns=self.max_turns,
                               max_episode_tokens=self.max_episode_tokens, on_error=self.on_rollout_error,
                               env_step_timeout=self.env_step_timeout, rollout_timeout=self.rollout_timeout)

    def kl_reference(self, service: ServiceClient) -> Reference | None:
        """The policy of the KL penalty: ``kl_reference_path``, else the base model; None without a penalty
        (a subclass may give one per prompt source: :data:`cookbook.rl.data.Reference`)."""
        return sampling_client(service, self.base_model, self.kl_reference_path) if self.kl_penalty_coef else None

    def reference_metrics(self, sequences: Sequence[RLSequence], gaps: Sequence[np.ndarray],
                          seconds: float) -> dict[str, float]:
        """What a step logs about the reference: the mean logprob gap on action tokens, and the time it took."""
        on_actions = [g[s.target_mask() > 0] for g, s in zip(gaps, sequences)]
        return {"kl/sampler_reference": float(np.concatenate(on_actions).mean()), "time/reference_s": seconds}

    def progress_fields(self) -> dict[str, str]:
        """The metrics the progress line shows (metric key -> format)."""
        return {"reward/mean": "reward {:.3f}", "time/step_s": "{:.1f} s/step"}


@dataclass
class Batch:
    """One step's episodes and how they were sampled."""

    step: int
    version: int  # optimizer steps the sampling weights had
    groups: list[TrajectoryGroup]
    dropped: int
    seconds: float
    sampled: int = 0  # groups rolled out (more than len(groups) when dynamic sampling filtered some out)
    rounds: int = 1  # rounds of rollouts


def train(
    config: RLConfig,
    dataset: RLDataset,
    *,
    eval_hooks: Mapping[str, Hook | SamplingHookFn] | None = None,
    run_config: dict[str, Any] | None = None,
    service: ServiceClient | None = None,
    reference: Reference | None = None,
) -> RunResult:
    """Train a LoRA adapter with RL on ``dataset``'s environments; ``reference`` replaces
    :meth:`RLConfig.kl_reference`'s policy (``run_config`` and ``service``: see :class:`cookbook.run.Run`)."""
    total = min(len(dataset), config.max_steps) if config.max_steps is not None else len(dataset)
    run = Run(config, total, hooks=eval_hooks, service=service, run_config=run_config, description="rl",
              show=config.progress_fields(), timed=True)
    if run.finished:
        return run.result
    with run:
        reference = reference or config.kl_reference(run.service)
        episodes = EpisodeLog(run.dir.path / "episodes.txt", run.training_client.get_tokenizer(), config.log_groups)
        with _Samplers(run.training_client, run.start, config.max_staleness,
                       record_stability_info=config.loss_fn == "stable_reinforce") as samplers:
            for batch in _batch_source(config, dataset, samplers, run.start, total):
                assert batch.step - batch.version <= config.max_staleness, (batch.step, batch.version)
                episodes.write(batch.step, batch.groups)
                metrics = train_step(config, run.training_client, batch, reference, total)
                samplers.publish(batch.step + 1)  # the weights after this step sample the batches that may use them
                run.end_step(batch.step, metrics)
    return run.result


def train_step(config: RLConfig, training_client: TrainingClient, batch: Batch, reference: Reference | None,
               total: int) -> dict[str, float]:
    """One step on a batch of episodes: advantages (module docstring) -> Datums -> optimizer step(s); its metrics."""
    row = rl_metrics.rollout_metrics(batch.groups, batch.dropped)
    row.update({"time/rollout_s": batch.seconds, "sampler/staleness": batch.step - batch.version})
    if config.dynamic_sampling_rounds:
        row.update({"groups/sampled": batch.sampled, "groups/sampling_rounds": batch.rounds})
    groups = with_overlong_penalty(batch.groups, config.max_tokens, config.overlong_buffer * config.max_tokens,
                                   config.overlong_penalty)
    if config.overlong_buffer:
        row["reward/overlong_penalty"] = float(np.mean([p - r for g, h in zip(batch.groups, groups)
                                                        for r, p in zip(g.rewards, h.rewards)]))
    kept = [g for g in groups if not (config.remove_constant_reward_groups and is_constant(g))]
    sequences = groups_to_sequences(kept, config.advantage_estimator)
    gaps = None
    if reference is not None and sequences:
        started = time.monotonic()
        gaps = logprob_gap(reference, sequences, sequence_sources(kept, sequences))
        row.update(config.reference_metrics(sequences, gaps, time.monotonic() - started))
    advantages = token_advantages(sequences, reward_coef=config.reward_coef, kl_coef=config.kl_penalty_coef, gaps=gaps)
    started = time.monotonic()
    row.update(_train_on(config, training_client, sequences, advantages, batch.step, total))
    row["time/train_s"] = time.monotonic() - started
    return row


class _Samplers:
    """Sampling clients of the training weights by version (optimizer steps done), for the rollouts."""

    def __init__(self, training_client: TrainingClient, version: int, max_staleness: int, *,
                 record_stability_info: bool = False) -> None:
        self.training_client, self.max_staleness = training_client, max_staleness
        self.record_stability_info = record_stability_info  # stable_reinforce's samplers record each sequence
        self._cv = threading.Condition()
        self._closed = False
        self._latest: tuple[int, SamplingClient | None] = (version, self._snapshot())

    def _snapshot(self) -> SamplingClient:
        if self.record_stability_info:
            return ready(self.training_client.save_weights_and_get_sampling_client(record_stability_info=True))
        return ready(self.training_client.save_weights_and_get_sampling_client())

    def publish(self, version: int) -> None:
        if self.max_staleness == 0:  # sync: the next batch is sampled on demand with these weights
            self._latest = (version, None)
            return
        client = self._snapshot()
        with self._cv:
            self._latest = (version, client)
            self._cv.notify_all()

    def for_step(self, step: int) -> tuple[int, SamplingClient]:
        """The newest weights, waiting until they are at most ``max_staleness`` steps behind ``step``."""
        with self._cv:
            while self._latest[0] < step - self.max_staleness and not self._closed:
                self._cv.wait()
            version, client = self._latest
        if client is None:
            client = self._snapshot()
            self._latest = (version, client)
        return version, client

    def __enter__(self) -> _Samplers:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._cv:  # an off-policy sampler thread waiting for newer weights stops waiting
            self._closed = True
            self._cv.notify_all()


def _sample(config: RLConfig, dataset: RLDataset, samplers: _Samplers, step: int) -> Batch:
    version, client = samplers.for_step(step)
    started = time.monotonic()
    builders = dataset.get_batch(step)
    step_seed = seeds.derived_seed(config.seed, step)
    settings = dataclasses.replace(config.rollout_settings(), seed=step_seed)
    groups, dropped = rollout_batch(builders, client, settings)
    sampled, rounds = len(groups), 1
    if config.dynamic_sampling_rounds:  # DAPO: keep mixed groups, roll out the next batches' groups until full
        groups = [g for g in groups if not is_constant(g)]
        while len(groups) < len(builders) and rounds <= config.dynamic_sampling_rounds:
            more, more_dropped = rollout_batch(dataset.get_batch((step + rounds) % len(dataset)), client,
                                               dataclasses.replace(settings, seed=seeds.mix(step_seed, rounds)))
            groups += [g for g in more if not is_constant(g)]
            sampled, dropped, rounds = sampled + len(more), dropped + more_dropped, rounds + 1
        groups = groups[: len(builders)]
    return Batch(step, version, groups, dropped, time.monotonic() - started, sampled, rounds)


def _batch_source(config: RLConfig, dataset: RLDataset, samplers: _Samplers, start: int,
                  total: int) -> Iterator[Batch]:
    """Batches in step order: sampled on demand (sync), or by a thread running ahead (off-policy)."""
    if config.max_staleness == 0:
        for step in range(start, total):
            yield _sample(config, dataset, samplers, step)
        return
    ready_batches: queue.Queue[Batch | BaseException] = queue.Queue(maxsize=config.max_staleness)

    def produce() -> None:
        try:
            for step in range(start, total):
                ready_batches.put(_sample(config, dataset, samplers, step))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the training thread
            ready_batches.put(exc)

    threading.Thread(target=produce, name="cookbook-rl-sampler", daemon=True).start()
    for _ in range(start, total):
        item = ready_batches.get()
        if isinstance(item, BaseException):
            raise item
        yield item


def _train_on(config: RLConfig, tc: TrainingClient, sequences: list[RLSequence], advantages: list[np.ndarray],
              step: int, total: int) -> dict[str, float]:
    """forward_backward + optim_step over ``num_substeps`` minibatches; training metrics."""
    adam = config.adam_params(step, total)
    row: dict[str, float] = {"learning_rate": adam.learning_rate, "train/sequences": len(sequences),
                             "train/tokens": sum(len(s.tokens) for s in sequences)}
    if not sequences:  # every group was constant: nothing to learn from this batch
        return row
    parts = [list(range(len(sequences)))[i::config.num_substeps] for i in range(config.num_substeps)]
    submitted = []
    for part in parts:
        if part:
            scaled = normalize_token_advantages([sequences[i] for i in part], [advantages[i] for i in part],
                                                config.loss_normalization)
            data = [sequences[i].to_datum(a, sequence_ratio_mask=config.loss_fn == "gspo",
                                          provenance=config.loss_fn == "stable_reinforce")
                    for i, a in zip(part, scaled)]
            fb = tc.forward_backward(data, config.loss_fn, config.loss_fn_config())
            submitted.append((part, fb, tc.optim_step(adam)))
    first_part, first_fb, _ = submitted[0]
    out = first_fb.result()
    row.update(rl_metrics.logprob_diff([sequences[i] for i in first_part],
                                       [o["logprobs"].to_numpy() for o in out.loss_fn_outputs]))
    losses = [out.metrics["loss:sum"]] + [fb.result().metrics["loss:sum"] for _, fb, _ in submitted[1:]]
    grad_norms = [(opt.result().metrics or {}).get("grad_norm:mean", float("nan")) for _, _, opt in submitted]
    row.update({"train/loss_sum": float(sum(losses)), "optim/grad_norm": float(np.mean(grad_norms))})
    return row
