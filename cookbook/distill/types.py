"""What an on-policy distillation user provides: prompts to sample the student on, and a teacher.

- Prompts: any :class:`cookbook.rl.types.RLDataset` of environments. The envs' rewards are the
  student's score (logged as ``reward/mean``; they join the advantage only with ``reward_coef``).
  A task env (:mod:`cookbook.rl.task_env`) grades the answers; :class:`PromptDataset` deals plain
  conversations with no reward at all (any list of chats works as distillation prompts).
- The teacher: :class:`Teacher`, a base model by name or a checkpoint's weights by path. It scores
  the student's own tokens, so it must use the student's tokenizer. Several teachers, one per
  prompt source (the name of the group builder that made the prompt's group: a task's name, or
  the ``sources`` given to :class:`PromptDataset`), are :func:`parse_teachers` of the ``teachers``
  option.

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


def parse_teachers(spec: str) -> dict[str, Teacher]:
    """``source=path,source=path,...`` -> a teacher checkpoint per prompt source (``*``: every other
    source); a :class:`ConfigError` for anything else."""
    teachers: dict[str, Teacher] = {}
    for entry in spec.split(","):
        source, sep, path = (part.strip() for part in entry.partition("="))
        if not (sep and source and path):
            raise ConfigError(f"teachers: {entry.strip()!r} is not source=checkpoint_path "
                              "(e.g. teachers=math=local://run_a/sampler_weights/final,code=local://...)")
        if source in teachers:
            raise ConfigError(f"teachers: source {source!r} is named twice")
        teachers[source] = Teacher(path=path)
    return teachers


class PromptGroupBuilder(EnvGroupBuilder):
    def __init__(self, messages: Sequence[Message], renderer: Renderer, group_size: int,
                 source: str = "prompt") -> None:
        self.messages, self.renderer, self.group_size, self.source = list(messages), renderer, group_size, source

    def make_envs(self) -> list[RenderedEnv]:
        return [RenderedEnv(PromptEnv(self.messages), self.renderer) for _ in range(self.group_size)]

    def name(self) -> str:
        return self.source


class PromptDataset(ShuffledDataset[tuple[str, list[Message]]]):
    """``groups_per_batch`` conversations per step, ``group_size`` samples of each, ``num_epochs``
    passes, shuffled with ``seed`` per epoch; ``sources`` names each prompt's source (default
    ``prompt``: one source), which picks its teacher in multi-teacher distillation."""

    def __init__(self, prompts: Sequence[Sequence[Message]], renderer: Renderer, *, groups_per_batch: int,
                 group_size: int = 1, num_epochs: int = 1, seed: int = 0,
                 sources: Sequence[str] | None = None) -> None:
        if sources is not None and len(sources) != len(prompts):
            raise ConfigError(f"{len(sources)} sources for {len(prompts)} prompts: name one source per prompt")
        names = list(sources) if sources is not None else ["prompt"] * len(prompts)
        super().__init__([(s, list(p)) for s, p in zip(names, prompts)], groups_per_batch=groups_per_batch,
                         num_epochs=num_epochs, seed=seed)
        self.prompts = [p for _, p in self.items]
        self.renderer, self.group_size = renderer, group_size

    def make_group(self, item: tuple[str, list[Message]]) -> PromptGroupBuilder:
        source, prompt = item
        return PromptGroupBuilder(prompt, self.renderer, self.group_size, source)
