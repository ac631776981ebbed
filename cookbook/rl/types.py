"""What an RL user implements: environments, groups of them, and a dataset of groups.

- :class:`Env`: one episode. ``initial_observation()`` gives the first prompt (tokens plus the stop
  condition for sampling); ``step(action_tokens)`` gives the reward, whether the episode is done,
  and the next prompt. Methods may be plain or ``async``; an env is used for one episode only.
- :class:`EnvGroupBuilder`: makes a group of envs that share a prompt (their rewards are compared
  to each other for advantages), optionally with a group-level reward (e.g. pairwise comparisons).
- :class:`RLDataset`: batches of group builders, one batch per training step.

Env authors who think in chat messages rather than tokens implement
:class:`cookbook.rl.message_env.MessageEnv` and wrap it with ``RenderedEnv``.

A leaf: imports ``tinker`` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

from tinker import types

StopCondition = list[str] | list[int]


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
