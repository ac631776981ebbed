"""What an on-policy distillation user provides: prompts to sample the student on, and a teacher.

- Prompts: any :class:`cookbook.rl.types.RLDataset` of environments. The envs' rewards are the
  student's score (logged as ``reward/mean``; they join the advantage only with ``reward_coef``).
  A task env (:mod:`cookbook.rl.task_env`) grades the answers; :class:`PromptDataset` deals plain
  conversations with no reward at all (any list of chats works as distillation prompts).
- The teacher: :class:`Teacher`, a base model by name or a checkpoint's weights by path. It scores
  the student's own tokens, so it must use the student's tokenizer.

May import ``cookbook.rl`` (types, message envs), ``cookbook.completers``, ``cookbook.primitives``,
``cookbook.errors`` and ``renderers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cookbook.completers import sampling_client
from cookbook.errors import ConfigError
from cookbook.primitives import SamplingClient, ServiceClient
from cookbook.rl.message_env import MessageEnv, MessageStepResult, RenderedEnv
from cookbook.rl.types import EnvGroupBuilder, ShuffledDataset
from renderers import Message, Renderer


@dataclass(frozen=True)
class Teacher:
    """The policy the student is distilled towards: exactly one of a base model or a checkpoint path
    (sampler weights, or a ``save_state`` path where the backend samples from those)."""

    base_model: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if (self.base_model is None) == (self.path is None):
            raise ConfigError("name the teacher with exactly one of teacher_model (a base model) or teacher_path "
                              f"(a checkpoint); got teacher_model={self.base_model!r}, teacher_path={self.path!r}")

    def sampling_client(self, service: ServiceClient) -> SamplingClient:
        return sampling_client(service, self.base_model or "", self.path)

    def __str__(self) -> str:
        return self.path or str(self.base_model)


class PromptEnv(MessageEnv):
    """One reply to a conversation; no reward (whether the reply parsed is logged as ``env/parse_ok``)."""

    def __init__(self, messages: Sequence[Message]) -> None:
        self.messages = list(messages)

    def initial_messages(self) -> list[Message]:
        return list(self.messages)

    def step(self, message: Message, parse_ok: bool) -> MessageStepResult:
        return MessageStepResult(0.0, True, metrics={"parse_ok": float(parse_ok)})


class PromptGroupBuilder(EnvGroupBuilder):
    def __init__(self, messages: Sequence[Message], renderer: Renderer, group_size: int) -> None:
        self.messages, self.renderer, self.group_size = list(messages), renderer, group_size

    def make_envs(self) -> list[RenderedEnv]:
        return [RenderedEnv(PromptEnv(self.messages), self.renderer) for _ in range(self.group_size)]

    def name(self) -> str:
        return "prompt"


class PromptDataset(ShuffledDataset[list[Message]]):
    """``groups_per_batch`` conversations per step, ``group_size`` samples of each, ``num_epochs``
    passes, shuffled with ``seed`` per epoch."""

    def __init__(self, prompts: Sequence[Sequence[Message]], renderer: Renderer, *, groups_per_batch: int,
                 group_size: int = 1, num_epochs: int = 1, seed: int = 0) -> None:
        super().__init__([list(p) for p in prompts], groups_per_batch=groups_per_batch, num_epochs=num_epochs,
                         seed=seed)
        self.prompts, self.renderer, self.group_size = self.items, renderer, group_size

    def make_group(self, prompt: list[Message]) -> PromptGroupBuilder:
        return PromptGroupBuilder(prompt, self.renderer, self.group_size)
