"""Prompt (context) distillation data: a teacher answers under a system prompt, the student learns
the answers without it.

- :func:`teacher_conversations`: for each query (a conversation with no system message), the
  teacher answers ``[system prompt] + query`` (``samples_per_query`` times, all requests submitted
  before any is awaited); replies that did not parse are dropped, and so are those a ``keep``
  check rejects. The result is plain conversations, query + the teacher's answer, *without* the
  system prompt: SFT data for any loop (``cookbook.supervised.data.conversations_to_data``).
- :func:`follow_rate`: the fraction of replies to some queries that follow an instruction, given a
  check such as :func:`regex_check` (measure a student without the prompt, a teacher with it).
- :func:`query_of`, :func:`with_system_prompt`, :func:`write_conversations` (JSONL rows of
  ``{"messages": [...]}``, the format every data reader of the cookbook takes).

Sampling goes through :class:`cookbook.completers.MessageCompleter` (its temperature and
``max_tokens`` are the caller's choice). May import the shared layer of ``cookbook`` and ``renderers``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cookbook.completers import Completion, MessageCompleter
from cookbook.errors import ConfigError, DataError
from renderers import Message, to_openai_messages

Conversation = list[Message]
Check = Callable[[str], bool]  # reply text -> whether it follows the instruction


def query_of(conversation: Sequence[Message]) -> Conversation:
    """The conversation up to its last user turn's answer: trailing assistant messages removed
    (so an SFT conversation serves as a query)."""
    query = list(conversation)
    while query and query[-1]["role"] == "assistant":
        query.pop()
    if not query:
        raise DataError("a query needs at least one message before the assistant's answer")
    return query


def with_system_prompt(query: Sequence[Message], system_prompt: str) -> Conversation:
    """``query`` with ``system_prompt`` as its first message; a query that has its own system
    message is refused (the teacher's prompt would not be the only instruction)."""
    if any(m["role"] == "system" for m in query):
        raise DataError(f"a query already has a system message ({query[0].get('content')!r}...); "
                        "prompt distillation adds its own: remove system messages from the queries")
    return [{"role": "system", "content": system_prompt}, *query]


@dataclass(frozen=True)
class DistillationData:
    conversations: list[Conversation]  # query + teacher answer, no system prompt
    n_queries: int
    n_samples: int  # replies sampled: n_queries * samples_per_query
    n_unparsed: int  # dropped: the reply did not parse (e.g. cut off at max_tokens)
    n_rejected: int  # dropped: parsed, but ``keep`` rejected it

    @property
    def kept_fraction(self) -> float:
        return len(self.conversations) / max(self.n_samples, 1)


def teacher_conversations(teacher: MessageCompleter, queries: Sequence[Sequence[Message]], system_prompt: str, *,
                          samples_per_query: int = 1, keep: Check | None = None) -> DistillationData:
    """The student's training conversations: each query followed by one of the teacher's answers to
    ``[system prompt] + query``, without the system prompt (see the module docstring)."""
    if samples_per_query < 1:
        raise ConfigError(f"samples_per_query must be at least 1, got {samples_per_query}")
    if not system_prompt.strip():
        raise ConfigError("system_prompt is empty: there is nothing to distill")
    prompted = [with_system_prompt(q, system_prompt) for q in queries]
    # Each sample is its own request (MessageCompleter takes the first sequence of each); they are
    # all submitted before any is awaited, so the backend batches them.
    replies = teacher.complete_many([c for c in prompted for _ in range(samples_per_query)])
    conversations: list[Conversation] = []
    unparsed = rejected = 0
    for i, reply in enumerate(replies):
        if not reply.parsed:
            unparsed += 1
        elif keep is not None and not keep(reply.text):
            rejected += 1
        else:
            conversations.append([*queries[i // samples_per_query], reply.message])
    return DistillationData(conversations, len(queries), len(replies), unparsed, rejected)


def regex_check(pattern: str) -> Check:
    """A reply follows when the whole of it (surrounding whitespace aside) matches ``pattern``."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"follow_regex {pattern!r} is not a valid regular expression ({exc})") from None
    return lambda text: compiled.fullmatch(text.strip()) is not None


@dataclass(frozen=True)
class FollowResult:
    rate: float  # fraction of queries whose reply parsed and follows the instruction
    parse_ok: float  # fraction of replies that parsed
    replies: list[Completion]  # in the order of the queries

    def metrics(self) -> dict[str, float]:
        return {"follow_rate": self.rate, "parse_ok": self.parse_ok}


def follow_rate(completer: MessageCompleter, queries: Sequence[Sequence[Message]], follows: Check, *,
                system_prompt: str | None = None) -> FollowResult:
    """How often ``completer`` (greedy, for a measurement) follows the instruction on ``queries``,
    asked without a system prompt, or with ``system_prompt`` when given."""
    if not queries:
        raise DataError("follow_rate needs at least one query")
    asked = [with_system_prompt(q, system_prompt) if system_prompt else list(q) for q in queries]
    replies = completer.complete_many(asked)
    followed = sum(r.parsed and follows(r.text) for r in replies)
    return FollowResult(followed / len(replies), sum(r.parsed for r in replies) / len(replies), replies)


def write_conversations(path: str | Path, conversations: Sequence[Sequence[Message]]) -> Path:
    """One ``{"messages": [...]}`` JSON object per line (OpenAI-style messages)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for conversation in conversations:
            f.write(json.dumps({"messages": to_openai_messages(list(conversation))}) + "\n")
    return path
