"""The RL loop, written only against the Tinker primitives.

Per step: take a sampling client of the current weights, roll out the step's groups of episodes
(all concurrently), turn them into Datums with group-centred advantages (dropping groups whose
rewards are all equal, if asked), optionally subtract a KL penalty against a reference policy
from the advantages, then ``forward_backward`` + ``optim_step`` in ``num_substeps`` minibatches.
The first minibatch's forward pass scores the sampled tokens under the weights that sampled them,
so the sampler-vs-trainer logprob difference is logged every step at no extra cost.

Off-policy (``max_staleness = k > 0``): a background thread samples ahead while the trainer
trains; a batch is sampled with weights at most k optimizer steps older than the step that trains
on it (the sampler waits otherwise), and ``importance_sampling`` / ``ppo`` correct for the lag.

Resume and checkpoints are the shared ones (``cookbook.checkpointing``); hooks as in every loop.
May import the shared layer, ``cookbook.rl.*`` and ``renderers``; imports no other loop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import chz
import numpy as np

from cookbook import checkpointing
from cookbook.checkpointing import RunResult
from cookbook.config import OptimizerConfig, RunConfig, make_service
from cookbook.hooks import Hook, Hooks, SamplingHookFn
from cookbook.metric_logger import MetricLogger
from cookbook.primitives import SamplingClient, ServiceClient, TrainingClient, ready
from cookbook.progress import StepProgress
from cookbook.rl import metrics as rl_metrics
from cookbook.rl.data import Sequence as RLSequence
from cookbook.rl.data import groups_to_sequences, is_constant, logprob_gap
from cookbook.rl.episode_log import EpisodeLog
from cookbook.rl.rollouts import OnError, RolloutSettings, rollout_batch
from cookbook.rl.types import RLDataset, TrajectoryGroup
from cookbook.run_dir import RunDir

LOSSES = ("importance_sampling", "ppo", "cispo", "dro")


@chz.chz
class RLConfig(RunConfig, OptimizerConfig):
    """Everything the RL loop needs besides the dataset (run and optimizer settings: ``cookbook.config``)."""

    base_model: str = "tiny"
    lora_rank: int = 32
    load_checkpoint_path: str | None = None  # start from these weights (fresh optimizer); resume wins over it
    learning_rate: float = 1e-4
    lr_schedule: str = "constant"
    max_tokens: int = 64  # sampled tokens per turn
    temperature: float = 1.0
    max_turns: int = 16
    max_episode_tokens: int | None = None
    loss_fn: str = "importance_sampling"  # importance_sampling, ppo, cispo or dro
    clip_low_threshold: float | None = None  # ppo / cispo clipping (None: the loss's default)
    clip_high_threshold: float | None = None
    dro_beta: float | None = None
    num_substeps: int = 1  # optimizer steps per batch (the batch split into this many minibatches)
    normalize_advantages: bool = False  # divide by the group's reward std
    remove_constant_reward_groups: bool = True
    kl_penalty_coef: float = 0.0  # advantage -= coef * (log p_sampler - log p_reference) per token
    kl_reference_path: str | None = None  # the reference policy's sampler weights (None: the base model)
    max_staleness: int = 0  # 0: sample with the current weights; k > 0: sampling runs up to k steps ahead
    on_rollout_error: OnError = "drop"
    max_steps: int | None = None  # default: every batch of the dataset
    eval_every: int = 0
    save_every: int = 0
    log_groups: int = 2  # groups written to episodes.txt per step (0: none)
    log_path: str = "runs/rl"

    def loss_fn_config(self) -> dict[str, float] | None:
        config = {"clip_low_threshold": self.clip_low_threshold, "clip_high_threshold": self.clip_high_threshold,
                  "beta": self.dro_beta}
        config = {k: float(v) for k, v in config.items() if v is not None}
        return config or None

    def rollout_settings(self) -> RolloutSettings:
        return RolloutSettings(max_tokens=self.max_tokens, temperature=self.temperature, max_turns=self.max_turns,
                               max_episode_tokens=self.max_episode_tokens, on_error=self.on_rollout_error)


@dataclass
class _Batch:
    step: int
    version: int  # optimizer steps the sampling weights had
    groups: list[TrajectoryGroup]
    dropped: int
    seconds: float


def train(
    config: RLConfig,
    dataset: RLDataset,
    *,
    eval_hooks: Mapping[str, Hook | SamplingHookFn] | None = None,
    run_config: dict[str, Any] | None = None,
    service: ServiceClient | None = None,
) -> RunResult:
    """Train a LoRA adapter with RL on ``dataset``'s environments; see the module docstring."""
    if config.loss_fn not in LOSSES:
        raise ValueError(f"loss_fn must be one of {', '.join(LOSSES)}, got {config.loss_fn!r}")
    run = RunDir(config.log_path, run_config or chz.asdict(config), config.if_exists)
    total = min(len(dataset), config.max_steps) if config.max_steps is not None else len(dataset)
    hooks = Hooks(dict(eval_hooks or {}), default_every=config.eval_every, total_steps=total)
    service = service or make_service(config)
    if run.is_finished():
        return checkpointing.finished(run, service, total)
    tc, start = checkpointing.start_or_resume(run, service, config)
    reference = _reference_sampler(config, service)
    logger = MetricLogger(run, wandb_project=config.wandb_project, wandb_name=config.wandb_name, resume_step=start)
    episodes = EpisodeLog(run.path / "episodes.txt", tc.get_tokenizer(), config.log_groups)
    sampler = _Samplers(tc, start, config.max_staleness)
    batches = _batch_source(config, dataset, sampler, start, total)

    try:
        with StepProgress(total, start, "rl", enabled=config.progress,
                          fields={"reward": "reward {}", "time": "{} s/step"}) as progress:
            for step in range(start, total):
                started = time.monotonic()
                batch = next(batches)
                assert batch.step == step and step - batch.version <= config.max_staleness, (step, batch.version)
                episodes.write(step, batch.groups)
                row = _learn_from(config, tc, reference, batch, total)
                sampler.publish(step + 1)  # the weights after this step sample the batches that may use them
                hooks_started = time.monotonic()
                row.update(hooks.run(step, tc))
                row["time/hooks_s"] = time.monotonic() - hooks_started
                if config.save_every > 0 and (step + 1) % config.save_every == 0 and step != total - 1:
                    checkpointing.save_checkpoint(run, tc, step + 1)
                row["time/step_s"] = time.monotonic() - started
                logger.log(step, row)
                progress.update(step + 1, reward=f"{row['reward/mean']:.3f}", time=f"{row['time/step_s']:.1f}")
    finally:
        sampler.close()  # an off-policy sampler thread waiting for newer weights stops waiting
    final = checkpointing.save_final(run, tc, total)
    logger.close()
    return RunResult(tc, total, final.state_path, final.sampler_path, run.metrics(), start)


def _reference_sampler(config: RLConfig, service: ServiceClient) -> SamplingClient | None:
    if config.kl_penalty_coef == 0:
        return None
    if config.kl_reference_path:
        return ready(service.create_sampling_client(model_path=config.kl_reference_path))
    return ready(service.create_sampling_client(base_model=config.base_model))


class _Samplers:
    """Sampling clients of the training weights by version (optimizer steps done), for the rollouts."""

    def __init__(self, training_client: TrainingClient, version: int, max_staleness: int) -> None:
        self.training_client, self.max_staleness = training_client, max_staleness
        self._cv = threading.Condition()
        self._closed = False
        self._latest = (version, ready(training_client.save_weights_and_get_sampling_client()))

    def publish(self, version: int) -> None:
        if self.max_staleness == 0:  # sync: the next batch is sampled on demand with these weights
            self._latest = (version, None)
            return
        client = ready(self.training_client.save_weights_and_get_sampling_client())
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
            client = ready(self.training_client.save_weights_and_get_sampling_client())
            self._latest = (version, client)
        return version, client

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()


def _sample(config: RLConfig, dataset: RLDataset, samplers: _Samplers, step: int) -> _Batch:
    version, client = samplers.for_step(step)
    started = time.monotonic()
    groups, dropped = rollout_batch(dataset.get_batch(step), client, config.rollout_settings())
    return _Batch(step, version, groups, dropped, time.monotonic() - started)


def _batch_source(config: RLConfig, dataset: RLDataset, samplers: _Samplers, start: int, total: int):
    """Batches in step order: sampled on demand (sync), or by a thread running ahead (off-policy)."""
    if config.max_staleness == 0:
        for step in range(start, total):
            yield _sample(config, dataset, samplers, step)
        return
    ready_batches: queue.Queue = queue.Queue(maxsize=config.max_staleness)

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


def _learn_from(config: RLConfig, tc: TrainingClient, reference: SamplingClient | None, batch: _Batch,
                total: int) -> dict[str, float]:
    """One batch of episodes -> advantages -> Datums -> optimizer step(s); the step's metrics."""
    row = rl_metrics.rollout_metrics(batch.groups, batch.dropped)
    row.update({"time/rollout_s": batch.seconds, "sampler/staleness": batch.step - batch.version})
    kept = [g for g in batch.groups if not (config.remove_constant_reward_groups and is_constant(g))]
    sequences = groups_to_sequences(kept, normalize_std=config.normalize_advantages)
    started = time.monotonic()
    row.update(_train_on(config, tc, reference, sequences, batch.step, total))
    row["time/train_s"] = time.monotonic() - started
    return row


def _train_on(config: RLConfig, tc: TrainingClient, reference: SamplingClient | None,
              sequences: list[RLSequence], step: int, total: int) -> dict[str, float]:
    """forward_backward + optim_step over ``num_substeps`` minibatches; training metrics."""
    adam = config.adam_params(step, total)
    row: dict[str, float] = {"learning_rate": adam.learning_rate, "train/sequences": len(sequences),
                             "train/tokens": sum(len(s.tokens) for s in sequences)}
    if not sequences:  # every group was constant: nothing to learn from this batch
        return row
    advantages = [s.target_mask() * np.float32(s.advantage) for s in sequences]
    if reference is not None:
        kl = logprob_gap(reference, sequences)
        advantages = [a - np.float32(config.kl_penalty_coef) * k for a, k in zip(advantages, kl)]
        on_actions = [k[s.target_mask() > 0] for k, s in zip(kl, sequences)]
        row["kl/sampler_reference"] = float(np.concatenate(on_actions).mean())
    data = [s.to_datum(a) for s, a in zip(sequences, advantages)]
    parts = [list(range(len(data)))[i::config.num_substeps] for i in range(config.num_substeps)]
    submitted = []
    for part in parts:
        if part:
            fb = tc.forward_backward([data[i] for i in part], config.loss_fn, config.loss_fn_config())
            submitted.append((part, fb, tc.optim_step(adam)))
    first_part, first_fb, _ = submitted[0]
    out = first_fb.result()
    row.update(rl_metrics.logprob_diff([sequences[i] for i in first_part],
                                       [o["logprobs"].to_numpy() for o in out.loss_fn_outputs]))
    losses = [out.metrics["loss:sum"]] + [fb.result().metrics["loss:sum"] for _, fb, _ in submitted[1:]]
    grad_norms = [opt.result().metrics.get("grad_norm:mean", float("nan")) for _, _, opt in submitted]
    row.update({"train/loss_sum": float(sum(losses)), "optim/grad_norm": float(np.mean(grad_norms))})
    return row
