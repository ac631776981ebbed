"""Message types, `TrainOnWhat`, the `Renderer` base class and the helpers every family shares.

A family renders a conversation into a list of `Piece`s (text with the index of the message it
belongs to and whether it is part of that message's output, i.e. what a model would generate for
it). The base class turns pieces into tokens and weights, so each family only states its format.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal, Required, TypedDict

from tinker import types
from transformers import PreTrainedTokenizerBase


class ToolCallFunction(TypedDict):
    name: str
    arguments: str  # JSON text, as in the OpenAI API (a dict is accepted on input)


class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: ToolCallFunction


class TextPart(TypedDict):
    type: Literal["text"]
    text: str


class Message(TypedDict, total=False):
    role: Required[str]  # "system" | "user" | "assistant" | "tool"
    content: Required[str | list[TextPart]]
    thinking: str  # assistant reasoning; families without a thinking format ignore it
    tool_calls: list[ToolCall]
    tool_call_id: str
    name: str
    trainable: bool  # read by TrainOnWhat.CUSTOMIZED


# An OpenAI function tool: {"type": "function", "function": {"name", "description", "parameters"}}.
ToolSpec = dict[str, Any]

ROLES = ("system", "user", "assistant", "tool")


class TrainOnWhat(StrEnum):
    LAST_ASSISTANT_MESSAGE = "last_assistant_message"
    ALL_ASSISTANT_MESSAGES = "all_assistant_messages"
    ALL_MESSAGES = "all_messages"
    CUSTOMIZED = "customized"  # messages with `trainable: True`


class ParseError(ValueError):
    """Raised inside a family's parser for malformed output; `parse_response` turns it into ok=False."""


# ---------------------------------------------------------------------------------------------
# Message helpers


def text_content(message: Message) -> str:
    """The message's content as one string (text parts are concatenated with no separator)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.get("type") != "text":
            raise ValueError(f"only text content parts are supported, got {part.get('type')!r}")
        texts.append(part["text"])
    return "".join(texts)


def thinking_of(message: Message) -> str | None:
    """The message's thinking, or None when it has none (an empty string is kept: templates that
    test for the key's presence render an empty block for it)."""
    return message.get("thinking")


def tool_calls_of(message: Message) -> list[ToolCall]:
    """The message's tool calls; a missing, None or empty `tool_calls` all mean no calls."""
    return list(message.get("tool_calls") or [])


def tojson(value: Any, indent: int | None = None) -> str:
    """JSON exactly as the chat templates' `tojson` filter writes it (no ASCII escaping, key order kept)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def arguments_text(call: ToolCall) -> str:
    """A tool call's arguments as JSON text (kept verbatim when given as a string)."""
    arguments = call["function"]["arguments"]
    return arguments if isinstance(arguments, str) else tojson(arguments)


def arguments_object(call: ToolCall) -> Any:
    """A tool call's arguments as a JSON value, for templates that apply `tojson` to them."""
    arguments = call["function"]["arguments"]
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments)
    except json.JSONDecodeError as e:
        raise ValueError(f"tool call arguments are not valid JSON: {arguments!r}") from e


def make_tool_call(name: str, arguments: str, call_id: str) -> ToolCall:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def parse_json_arguments(text: str) -> str:
    """Validate generated tool-call arguments; returns them verbatim. Raises ParseError."""
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise ParseError(f"tool call arguments are not valid JSON: {text!r}") from e
    return text


def assistant_message(content: str, thinking: str | None = None, tool_calls: Sequence[ToolCall] = ()) -> Message:
    message: Message = {"role": "assistant", "content": content}
    if thinking is not None:
        message["thinking"] = thinking
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    return message


def check_messages(messages: Sequence[Message]) -> None:
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise ValueError(f"message {i} must be a dict with a 'role'")
        if message["role"] not in ROLES:
            raise ValueError(f"message {i} has unsupported role {message['role']!r}; use one of {ROLES}")
        if not isinstance(message.get("content", ""), (str, list)):
            raise ValueError(f"message {i} content must be a string or a list of text parts")
        text_content(message)


# ---------------------------------------------------------------------------------------------
# Pieces: what a family renders


@dataclass(frozen=True)
class Piece:
    text: str
    special: bool  # one special token, looked up by id
    message: int | None  # index of the message this text belongs to (None: template scaffolding)
    output: bool  # part of the message's body (content and end-of-turn), not its header


class Rendering:
    """Collects pieces; text is split at the family's special tokens as it is added."""

    def __init__(self, special_re: re.Pattern[str] | None):
        self._special_re = special_re
        self.pieces: list[Piece] = []

    def add(self, text: str, message: int | None = None, *, output: bool = False) -> None:
        parts = self._special_re.split(text) if self._special_re else [text]
        for k, part in enumerate(parts):
            if part:
                self.pieces.append(Piece(part, special=k % 2 == 1, message=message, output=output))

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces)


# ---------------------------------------------------------------------------------------------
# The renderer


class Renderer(ABC):
    """Messages <-> tokens for one chat format.

    Subclasses set `name`, `required_special_tokens` (must be added tokens of the tokenizer),
    `optional_special_tokens` (split out as special tokens when the tokenizer has them as added
    tokens, left as text otherwise), `end_of_turn` (the strings that end a generated turn) and
    implement `_render` and `_parse`.
    """

    name: ClassVar[str]
    required_special_tokens: ClassVar[tuple[str, ...]] = ()
    optional_special_tokens: ClassVar[tuple[str, ...]] = ()
    end_of_turn: ClassVar[tuple[str, ...]] = ()

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer
        added = set(tokenizer.get_added_vocab())
        missing = [t for t in self.required_special_tokens if t not in added]
        if missing:
            raise ValueError(f"renderer {self.name!r} needs the tokenizer to have special tokens {missing}")
        specials = list(self.required_special_tokens) + [t for t in self.optional_special_tokens if t in added]
        self._special_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
        # Longest first, so a token that is a prefix of another never wins.
        ordered = sorted(specials, key=len, reverse=True)
        self._special_re = re.compile("(" + "|".join(map(re.escape, ordered)) + ")") if ordered else None

    # -- public API -------------------------------------------------------------------------

    def build_generation_prompt(
        self, messages: Sequence[Message], prefill: str | None = None, *, tools: Sequence[ToolSpec] | None = None
    ) -> types.ModelInput:
        """Tokens for sampling the next assistant turn (optionally with its first text forced)."""
        rendering = self._rendering(messages, tools, add_generation_prompt=True)
        if prefill:
            rendering.add(prefill)
        tokens, _ = self._encode(rendering.pieces)
        return types.ModelInput.from_ints(tokens)

    def build_supervised_example(
        self,
        messages: Sequence[Message],
        train_on_what: TrainOnWhat | str = TrainOnWhat.LAST_ASSISTANT_MESSAGE,
        *,
        tools: Sequence[ToolSpec] | None = None,
    ) -> tuple[types.ModelInput, list[float]]:
        """Tokens of the whole conversation and a weight per token: 1 on the bodies (content and
        end-of-turn token) of the trained messages, 0 elsewhere."""
        trained = trained_messages(messages, TrainOnWhat(train_on_what))
        rendering = self._rendering(messages, tools, add_generation_prompt=False)
        tokens, owners = self._encode(rendering.pieces)
        weights = [1.0 if output and message in trained else 0.0 for message, output in owners]
        return types.ModelInput.from_ints(tokens), weights

    def render_text(
        self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] | None = None,
        add_generation_prompt: bool = False
    ) -> str:
        """The rendered text: the official template's text for the same conversation, up to the
        family's documented differences."""
        return self._rendering(messages, tools, add_generation_prompt).text

    def get_stop_sequences(self) -> list[int] | list[str]:
        return [self._special_ids[t] for t in self.end_of_turn]

    def parse_response(self, tokens: Sequence[int]) -> tuple[Message, bool]:
        """Parse a sampled assistant turn. ok is False (never an exception) when the turn has no
        end-of-turn marker (truncated) or its thinking / tool calls are malformed."""
        text = self.decode(tokens)
        end = self._find_end(text)
        if end is None:
            return assistant_message(text), False
        body, terminator = end
        try:
            return self._parse(body, terminator), True
        except ParseError:
            return assistant_message(body), False

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # -- family hooks -----------------------------------------------------------------------

    @abstractmethod
    def _render(
        self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None, add_generation_prompt: bool
    ) -> None: ...

    @abstractmethod
    def _parse(self, body: str, terminator: str) -> Message:
        """Parse the text of a turn (without its terminator); raise ParseError when malformed."""

    def _find_end(self, text: str) -> tuple[str, str] | None:
        """Split off the first end-of-turn marker: (body, marker), or None when there is none."""
        hits = [(text.find(m), m) for m in self.end_of_turn if m in text]
        if not hits:
            return None
        index, marker = min(hits)
        return text[:index], marker

    # -- shared machinery -------------------------------------------------------------------

    def _rendering(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] | None, add_generation_prompt: bool
    ) -> Rendering:
        check_messages(messages)
        out = Rendering(self._special_re)
        self._render(out, list(messages), list(tools) if tools else None, add_generation_prompt)
        return out

    def _encode(self, pieces: list[Piece]) -> tuple[list[int], list[tuple[int | None, bool]]]:
        """Token ids and, per token, (message index, output flag).

        Special tokens are looked up by id; each maximal run of text between them is encoded as
        one string, so the ids equal the tokenizer's ids for the whole rendered text.
        """
        tokens: list[int] = []
        owners: list[tuple[int | None, bool]] = []
        run: list[Piece] = []

        def flush() -> None:
            if run:
                ids, run_owners = self._encode_run(run)
                tokens.extend(ids)
                owners.extend(run_owners)
                run.clear()

        for piece in pieces:
            if piece.special:
                flush()
                tokens.append(self._special_ids[piece.text])
                owners.append((piece.message, piece.output))
            else:
                run.append(piece)
        flush()
        return tokens, owners

    def _encode_run(self, run: list[Piece]) -> tuple[list[int], list[tuple[int | None, bool]]]:
        segments: list[tuple[str, tuple[int | None, bool]]] = []
        for piece in run:
            owner = (piece.message, piece.output)
            if segments and segments[-1][1] == owner:
                segments[-1] = (segments[-1][0] + piece.text, owner)
            else:
                segments.append((piece.text, owner))
        text = "".join(s for s, _ in segments)
        ids = self._encode_text(text)
        if len(segments) == 1:
            return ids, [segments[0][1]] * len(ids)
        # Usually the segments tokenize on their own exactly as they do together.
        parts = [self._encode_text(s) for s, _ in segments]
        if [t for part in parts for t in part] == ids:
            return ids, [owner for part, (_, owner) in zip(parts, segments) for _ in part]
        return ids, self._owners_by_offsets(text, ids, segments)

    def _owners_by_offsets(
        self, text: str, ids: list[int], segments: list[tuple[str, tuple[int | None, bool]]]
    ) -> list[tuple[int | None, bool]]:
        # A token merged across a segment boundary (e.g. "\n" + "\n\n" with a real BPE vocab) is
        # owned by the segment its last character is in.
        char_owner: list[tuple[int | None, bool]] = []
        for s, owner in segments:
            char_owner.extend([owner] * len(s))
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        if len(offsets) != len(ids):  # not expected; fall back to the first segment's owner
            return [segments[0][1]] * len(ids)
        return [char_owner[min(max(end - 1, start), len(text) - 1)] for start, end in offsets]

    def _encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)


def trained_messages(messages: Sequence[Message], train_on_what: TrainOnWhat) -> set[int]:
    """Indices of the messages whose bodies get weight 1."""
    if train_on_what is TrainOnWhat.ALL_MESSAGES:
        return set(range(len(messages)))
    if train_on_what is TrainOnWhat.CUSTOMIZED:
        return {i for i, m in enumerate(messages) if m.get("trainable")}
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not assistants:
        raise ValueError(f"{train_on_what.value} needs at least one assistant message")
    if train_on_what is TrainOnWhat.LAST_ASSISTANT_MESSAGE:
        return {assistants[-1]}
    return set(assistants)
