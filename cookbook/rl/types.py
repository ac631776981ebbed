"""What an RL user implements: environments, groups of them, and a dataset of groups.

- :class:`Env`: one episode. ``initial_observation()`` gives the first prompt (tokens plus the stop
  condition for sampling); ``step(action_tokens)`` gives the reward, whether the episode is done,
  and the next prompt. Methods may be plain or ``async``; an env is used for one episode only.
- :class:`EnvGroupBuilder`: makes a group of envs that share a prompt (their rewards are compared
  to each other for advantages), optionally with a group-level reward (e.g. pairwise comparisons).
- :class:`RLDataset`: batches of group builders, one batch per training step;
  :class:`ShuffledDataset` deals a list of items (problems, prompts) that way, one group per item.

Env authors who think in chat messages rather than tokens implement
:class:`cookbook.rl.message_env.MessageEnv` and wrap it with ``RenderedEnv``.

A leaf: imports ``tinker`` and the leaves ``cookbook.errors`` and ``cookbook.seeds`` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tinker import types

from cookbook.errors import ConfigError
from cookbook.seeds import shuffled

StopCondition = list[str] | list[int]
Item = TypeVar("Item")


@dataclass(frozen=True)
class Observation:
    """A prompt to sample the next action from, and where sampling stops."""

    model_input: types.ModelInput
    stop: StopCondition


@dataclass
class StepResult:
    reward: float
    done: bool
    next_observation: Observation | None = None  # required when not done
    metrics: dict[str, float] = field(default_factory=dict)  # averaged over episodes as env/<key>
    log: str = ""  # shown in the episode log (e.g. the parsed answer and the verdict)


class Env(ABC):
    """One episode of an environment (plain or ``async`` methods)."""

    @abstractmethod
    def initial_observation(self) -> Observation | Awaitable[Observation]: ...

    @abstractmethod
    def step(self, action: list[int]) -> StepResult | Awaitable[StepResult]: ...


class EnvGroupBuilder(ABC):
    """Makes a group of envs sharing one prompt; advantages compare rewards within a group."""

    @abstractmethod
    def make_envs(self) -> Sequence[Env] | Awaitable[Sequence[Env]]: ...

    def group_rewards(self, trajectories: Sequence["Trajectory"]) -> list[float]:
        """Extra reward per trajectory computed from the whole group (default: none)."""
        return [0.0] * len(trajectories)

    def name(self) -> str:
        """A label for logs and per-env metrics."""
        return type(self).__name__


class RLDataset(ABC):
    """Batches of group builders: ``len()`` batches, ``get_batch(i)`` for step ``i``."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]: ...


class ShuffledDataset(RLDataset, Generic[Item]):
    """``groups_per_batch`` items per step (one group each, made by :meth:`make_group`), ``num_epochs``
    passes over ``items``, reshuffled with ``seed`` every epoch; a partial last batch is dropped."""

    def __init__(self, items: Sequence[Item], *, groups_per_batch: int, num_epochs: int = 1, seed: int = 0) -> None:
        if not 0 < groups_per_batch <= len(items):
            raise ConfigError(f"groups_per_batch must be in [1, {len(items)}] (the number of items), "
                             f"got {groups_per_batch}")
        self.items, self.groups_per_batch = list(items), groups_per_batch
        self.num_epochs, self.seed = num_epochs, seed
        self.per_epoch = len(self.items) // groups_per_batch

    @abstractmethod
    def make_group(self, item: Item) -> EnvGroupBuilder: ...

    def __len__(self) -> int:
        return self.per_epoch * self.num_epochs

    def get_batch(self, index: int) -> list[EnvGroupBuilder]:
        epoch, i = divmod(index, self.per_epoch)
        order = shuffled(len(self.items), self.seed, epoch)
        chosen = order[i * self.groups_per_batch: (i + 1) * self.groups_per_batch]
        return [self.make_group(self.items[j]) for j in chosen]


@dataclass
class Transition:
    """One turn: the prompt, the sampled action and what the env said about it."""

    observation: types.ModelInput
    action: list[int]
    logprobs: list[float]  # the sampler's logprob of each action token
    stop_reason: str
    reward: float
    done: bool
    metrics: dict[str, float] = field(default_factory=dict)
    log: str = ""
    sequence_id: str | None = None  # the sampled sequence's id (provenance for stable_reinforce)


@dataclass
class Trajectory:
    transitions: list[Transition]

    @property
    def total_reward(self) -> float:
        return sum(t.reward for t in self.transitions)


@dataclass
class TrajectoryGroup:
    """The episodes of one group and each one's final reward (per-step rewards + group reward)."""

    builder: EnvGroupBuilder
    trajectories: list[Trajectory]
    rewards: list[float]
