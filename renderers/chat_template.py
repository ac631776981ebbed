"""`chat_template`: a renderer driven by the tokenizer's own Jinja chat template, for any chat model.

Rendering is the template's, run as `transformers`' `apply_chat_template` runs it
(`renderers.template_env`), so the text and the token ids are the tokenizer's by construction:
the whole conversation is rendered once and tokenized once. What the template does not state
(which text the model generates, where a turn ends, how it writes reasoning and tool calls) is
found by rendering:

- **Weights.** The trainable text of assistant message i is what the template writes after its
  generation prompt when message i is the last message: `render(messages[:i+1])` minus the common
  prefix with the generation prompt `render(messages[:i], add_generation_prompt=True)`, without
  trailing whitespace. That text is located in the rendering of the *whole* conversation (at the
  same place when the template renders history as it renders the last turn; by aligning the two
  renderings, special tokens kept whole, when the template rewrites history, e.g. drops earlier
  reasoning or ends earlier turns with another token), and a token gets weight 1 when its last
  character lies in a trained span (offset mapping), so BPE merges across turn boundaries never
  shift a weight.
- **Probing** (once, in the constructor) with a small made-up conversation: the generation prompt
  (the `add_generation_prompt` suffix; for templates whose user turns already end with the
  assistant header and whose generation-prompt text is not how an answer starts, the rendering
  without it), the end-of-turn text after an answer (stop sequence, trained with the turn), or,
  when the template writes none, the first token of the turn that follows (e.g. GLM's `<|user|>`),
  the tags around reasoning, and the tool-call format, recognised when one of the registry's
  formats (`renderers.tool_formats`) parses the probe call back exactly.

Tool calls go to the template with their arguments as JSON objects (what Hugging Face templates
expect), content parts joined into one string, reasoning as `reasoning_content` (and `thinking`).

What it cannot do raises `ChatTemplateError` (a ValueError) with one line: train non-assistant
messages (`all_messages`, or `customized` flags on other roles), sample with tools when the
template's tool-call format is not a known one, templates that cannot render a user/assistant
exchange, slow tokenizers (no offsets). A tokenizer without a template raises
`NoChatTemplateError`.

Imports nothing of this project but the renderer base, the template environment and the
tool-call formats.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any

import jinja2
from tinker import types
from transformers import PreTrainedTokenizerBase

from renderers.base import (
    Message,
    ParseError,
    Renderer,
    Rendering,
    ToolSpec,
    TrainOnWhat,
    arguments_object,
    arguments_text,
    assistant_message,
    check_messages,
    text_content,
    tool_calls_of,
    trained_messages,
)
from renderers.template_env import render_template
from renderers.tool_formats import TOOL_CALL_FORMATS


class ChatTemplateError(ValueError):
    """The chat template cannot do what was asked (the message is one line)."""


class NoChatTemplateError(ChatTemplateError):
    """The tokenizer has no chat template."""


@dataclass(frozen=True)
class TemplateFacts:
    """What probing found out about a template."""

    uses_generation_prompt: bool  # False: the prompt is the rendering without add_generation_prompt
    prompt_is_prefix: bool  # the prompt is a prefix of the rendered answer (else: documented exception)
    end_of_turn: str  # text after an answer (stripped), "" when the template writes none
    next_turn: tuple[str, ...]  # what starts the next turn, when there is no end-of-turn text
    tool_call_end: str  # another token that ends tool-call turns (gpt-oss's <|call|>), or ""
    history_end: str  # the token that ends an answer another turn follows, when it is not end_of_turn
    assistant_header: str  # what the generation prompt adds to a conversation (its last turn's header)
    think_open: str  # tag before reasoning ("" when the prompt already opens it)
    think_close: str  # tag after reasoning; "" when the template writes no reasoning
    after_think: str | None  # what separates reasoning from the content (None: any newlines)
    before_end: str  # whitespace the template writes between an answer and its end-of-turn text
    tool_format: str | None  # a key of TOOL_CALL_FORMATS, "unknown", or None (no tool calls)
    arguments_as_text: bool  # the template takes tool-call arguments as JSON text, not objects


_U1, _U2, _A1, _R1 = "Probe question one?", "Probe question two?", "Probe answer one.", "Probe reasoning."
_PROBE_ARGS = {"probe_arg": "probe value"}
_PROBE_TOOL = {
    "type": "function",
    "function": {"name": "probe_tool", "description": "A probe.",
                 "parameters": {"type": "object", "properties": {"probe_arg": {"type": "string"}}}},
}


def _probe_call(k: int) -> dict[str, Any]:
    return {"id": f"call_probe_{k:04d}", "type": "function",
            "function": {"name": "probe_tool", "arguments": _PROBE_ARGS}}


class ChatTemplateRenderer(Renderer):
    """Renders with the tokenizer's chat template. `template=` overrides the tokenizer's;
    `now=` pins the date the template reads through `strftime_now`; other keyword options are
    template options (e.g. `enable_thinking=False`, `reasoning_effort="high"`)."""

    name = "chat_template"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, *, template: str | Mapping[str, str] | None = None,
                 now: datetime | None = None, **template_options: Any):
        super().__init__(tokenizer)
        source = template if template is not None else getattr(tokenizer, "chat_template", None)
        if not source:
            who = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
            raise NoChatTemplateError(f"the tokenizer of {who!r} has no chat template; choose a renderer by name")
        if isinstance(source, Mapping):
            self._template = source.get("default") or next(iter(source.values()))
            self._tool_template = source.get("tool_use", self._template)
        else:
            self._template = self._tool_template = source
        if not getattr(tokenizer, "is_fast", False):
            raise ChatTemplateError("the chat-template renderer needs a fast tokenizer (it uses offset mappings)")
        self.options = dict(template_options)
        self._arguments_as_text = False
        self.now = now
        added = sorted(tokenizer.get_added_vocab(), key=len, reverse=True)
        self._added = set(added)
        self._added_re = re.compile("|".join(map(re.escape, added))) if added else None
        self._added_max = max(map(len, added), default=1)
        self.facts = self._probe()
        markers = [m for m in (self.facts.end_of_turn, self.facts.tool_call_end, *self.facts.next_turn) if m]
        turn_ends = sorted(set(markers) | ({self.facts.history_end} - {""}), key=len, reverse=True)
        self._turn_end_re = re.compile("|".join(map(re.escape, turn_ends))) if turn_ends else None
        eos = tokenizer.eos_token
        self.end_of_turn = tuple(dict.fromkeys(markers + ([eos] if eos else [])))  # type: ignore[misc]
        if not self.end_of_turn:
            raise ChatTemplateError("cannot tell where an assistant turn ends: the template writes no end-of-turn "
                                    "text, no turn follows an answer, and the tokenizer has no EOS token")

    # -- public API -------------------------------------------------------------------------

    def template_messages(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        """The messages as the template receives them (before transformers' own normalisation)."""
        out = []
        for m in messages:
            t: dict[str, Any] = {"role": m["role"], "content": text_content(m)}
            if m.get("thinking") is not None:
                t["reasoning_content"] = m["thinking"]
            calls = tool_calls_of(m)
            if calls:
                t["tool_calls"] = [
                    {"id": c.get("id"), "type": "function",
                     "function": {"name": c["function"]["name"],
                                  "arguments": arguments_text(c) if self._arguments_as_text else arguments_object(c)}}
                    for c in calls
                ]
            for key in ("tool_call_id", "name"):
                if key in m:
                    t[key] = m[key]
            out.append(t)
        return out

    def render_text(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] | None = None,
                    add_generation_prompt: bool = False) -> str:
        check_messages(messages)
        tools = list(tools) if tools else None
        if add_generation_prompt:
            return self._prompt_text(list(messages), tools, self._clock())
        return self._render_text(list(messages), tools, False, self._clock())

    def build_generation_prompt(self, messages: Sequence[Message], prefill: str | None = None, *,
                                tools: Sequence[ToolSpec] | None = None) -> types.ModelInput:
        if tools and self.facts.tool_format in (None, "unknown"):
            raise ChatTemplateError(
                "this chat template's tool-call format is not one the renderers know "
                f"({', '.join(TOOL_CALL_FORMATS)}), so sampled tool calls could not be parsed; use a family renderer"
            )
        text = self.render_text(messages, tools=tools, add_generation_prompt=True) + (prefill or "")
        return types.ModelInput.from_ints(self._encode_text(text))

    def build_supervised_example(
        self,
        messages: Sequence[Message],
        train_on_what: TrainOnWhat | str = TrainOnWhat.LAST_ASSISTANT_MESSAGE,
        *,
        tools: Sequence[ToolSpec] | None = None,
    ) -> tuple[types.ModelInput, list[float]]:
        check_messages(messages)
        mode = TrainOnWhat(train_on_what)
        if mode is TrainOnWhat.ALL_MESSAGES:
            raise ChatTemplateError(
                "the chat-template renderer trains assistant turns only (the template decides where other "
                "messages' text goes); use all_assistant_messages or a family renderer for all_messages"
            )
        messages = list(messages)
        trained = sorted(trained_messages(messages, mode))
        others = [i for i in trained if messages[i]["role"] != "assistant"]
        if others:
            raise ChatTemplateError(
                f"the chat-template renderer trains assistant turns only, but message {others[0]} "
                f"({messages[others[0]]['role']}) is flagged trainable"
            )
        tools = list(tools) if tools else None
        now = self._clock()
        text = self._render_text(messages, tools, False, now)
        mask = bytearray(len(text))
        for i in trained:
            span = self._assistant_span(messages, i, text, tools, now)
            if span:
                mask[span[0] : span[1]] = b"\x01" * (span[1] - span[0])
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        weights = [1.0 if end > start and mask[end - 1] else 0.0 for start, end in encoding["offset_mapping"]]
        return types.ModelInput.from_ints(list(encoding["input_ids"])), weights

    def get_stop_sequences(self) -> list[int] | list[str]:
        if all(m in self._added for m in self.end_of_turn):
            return [self.tokenizer.convert_tokens_to_ids(m) for m in self.end_of_turn]
        return list(self.end_of_turn)

    # -- Renderer hooks ---------------------------------------------------------------------

    def _render(self, out: Rendering, messages: list[Message], tools: list[ToolSpec] | None,
                add_generation_prompt: bool) -> None:
        raise NotImplementedError("the chat-template renderer renders whole texts (_render_text), not pieces")

    def _render_text(self, messages: list[Message], tools: list[ToolSpec] | None, add_generation_prompt: bool,
                     now: datetime | None = None) -> str:
        source = self._tool_template if tools else self._template
        try:
            return render_template(
                source, self.template_messages(messages), tools=tools, add_generation_prompt=add_generation_prompt,
                special_tokens=self.tokenizer.special_tokens_map, now=now, **self.options,
            )
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ChatTemplateError(f"the chat template cannot render this conversation: {reason}") from None

    def _parse(self, body: str, terminator: str) -> Message:
        facts = self.facts
        thinking = None
        if facts.before_end and terminator == facts.end_of_turn:
            body = body.removesuffix(facts.before_end)
        if facts.think_close and facts.think_close in body:
            reasoning, body = body.split(facts.think_close, 1)
            reasoning = reasoning.lstrip()
            if facts.think_open:
                reasoning = reasoning.removeprefix(facts.think_open)
            thinking = reasoning.strip("\n") or None
            body = body.lstrip("\n") if facts.after_think is None else body.removeprefix(facts.after_think)
        elif facts.think_open and facts.think_open in body:
            raise ParseError("unclosed reasoning block")
        calls = []
        if facts.tool_format in TOOL_CALL_FORMATS:
            body, calls = TOOL_CALL_FORMATS[facts.tool_format](body)
        return assistant_message(body, thinking, calls)

    # -- internals --------------------------------------------------------------------------

    def _clock(self) -> datetime:
        return self.now or datetime.now()

    def _prompt_text(self, messages: list[Message], tools: list[ToolSpec] | None, now: datetime | None) -> str:
        return self._render_text(messages, tools, self.facts.uses_generation_prompt, now)

    def _assistant_span(self, messages: list[Message], i: int, text: str, tools: list[ToolSpec] | None,
                        now: datetime) -> tuple[int, int] | None:
        """[start, end) of assistant message i's trainable text in `text` (the whole rendering)."""
        alone = self._render_text(messages[: i + 1], tools, False, now)
        try:
            history = self._render_text(messages[:i], tools, False, now)
            prompt = self._prompt_text(messages[:i], tools, now)
            header = prompt[len(history) :] if prompt.startswith(history) else ""
            turn = len(history) if alone.startswith(history) else self._carry(history, [len(history)], alone)[0]
        except ChatTemplateError:
            if i:
                raise
            # Templates rarely render an empty conversation: the first turn starts at the assistant header.
            header = self.facts.assistant_header
            found = [k for k in (alone.find(header), alone.find(header.strip())) if header.strip() and k >= 0]
            turn = min(found) if found else 0
        end = len(alone.rstrip())
        start = self._after_header(alone, header, turn, end)
        if end <= start:
            return None  # the template writes nothing the model would generate for this message
        if not text.startswith(alone[:end]):
            turn, end = self._carry(alone[:end], [turn, end], text)
            start = self._after_header(text, header, turn, end)
        if not self.facts.end_of_turn:
            follower = next((m for m in self.facts.next_turn if text.startswith(m, end)), None)
            if follower:
                end += len(follower)
        return start, end

    def _after_header(self, text: str, header: str, turn: int, end: int) -> int:
        """Where the trainable text of a turn that starts at `turn` begins: after the generation
        prompt's text (the assistant header), found whole; else after its non-blank part and as much
        of the whitespace around it as the turn repeats (templates that indent or add blank lines);
        else after as much of it as the turn shares (e.g. `<think>\\n` of an empty think block)."""
        if not header:
            return turn
        at = text.find(header, turn, end)
        if at >= 0:
            return at + len(header)
        core = header.strip()
        at = text.find(core, turn, end) if core else -1
        if at >= 0:
            tail = header[header.index(core) + len(core) :]
            return at + len(core) + self._lcp(tail, text[at + len(core) : end])
        return turn + self._lcp(header, text[turn:end])

    def _carry(self, src: str, positions: list[int], dst: str) -> list[int]:
        """Positions in `src` carried over to `dst`, a rendering of the same turns in which the template
        wrote some text differently (it rewrites history once more messages follow): after their common
        prefix the two are aligned, special tokens as single units, up to the turn end in `dst` that
        closes as many turns as `src` has (rewriting changes text inside turns, rarely the turns)."""
        p = self._lcp(src, dst)
        ends = list(self._turn_end_re.finditer(dst, p)) if self._turn_end_re else []
        count = len(self._turn_end_re.findall(src, p)) if self._turn_end_re else 0
        bound = ends[count - 1].end() if 0 < count <= len(ends) else len(dst)
        a_atoms, a_offsets = self._atoms(src[p:])
        b_atoms, b_offsets = self._atoms(dst[p:bound])
        opcodes = SequenceMatcher(None, a_atoms, b_atoms, autojunk=False).get_opcodes()

        def carried(x: int) -> int:
            if x <= p:
                return x
            k = bisect_right(a_offsets, x - p) - 1  # the atom boundary x is on
            for tag, i1, i2, j1, _ in opcodes:
                if tag == "equal" and i1 <= k <= i2:
                    return p + b_offsets[j1 + k - i1]
            for tag, i1, i2, j1, j2 in opcodes:
                if i1 <= k <= i2:  # inside rewritten text: atom for atom, within the rewritten span
                    return p + b_offsets[j1 if tag == "delete" else min(j2, j1 + k - i1)]
            return p + b_offsets[-1]

        return [carried(x) for x in positions]

    def _atoms(self, text: str) -> tuple[list[str], list[int]]:
        """Text as added tokens and single characters, with each atom's start offset (plus the end)."""
        atoms: list[str] = []
        offsets: list[int] = []
        pos = 0
        for m in self._added_re.finditer(text) if self._added_re else ():
            for k in range(pos, m.start()):
                atoms.append(text[k])
                offsets.append(k)
            atoms.append(m.group())
            offsets.append(m.start())
            pos = m.end()
        for k in range(pos, len(text)):
            atoms.append(text[k])
            offsets.append(k)
        offsets.append(len(text))
        return atoms, offsets

    def _lcp(self, a: str, b: str) -> int:
        """Length of the common prefix of a and b, never ending inside an added token of either."""
        n, limit = 0, min(len(a), len(b))
        while n < limit:
            step = min(4096, limit - n)
            if a[n : n + step] != b[n : n + step]:
                while a[n] == b[n]:
                    n += 1
                break
            n += step
        if n and self._added_re:
            moved = True
            while moved:
                moved = False
                for s in (a, b):
                    lo = max(0, n - self._added_max)
                    for m in self._added_re.finditer(s, lo, min(len(s), n + self._added_max)):
                        if m.start() < n < m.end():
                            n, moved = m.start(), True
        return n

    def _leading_added(self, s: str) -> str | None:
        m = self._added_re.match(s) if self._added_re else None
        return m.group() if m else None

    def _trailing_added(self, s: str) -> str | None:
        return next((t for t in sorted(self._added, key=len, reverse=True) if s.endswith(t)), None)

    def _probe(self) -> TemplateFacts:
        def render(messages: list[dict[str, Any]], gen: bool = False, tools: list[ToolSpec] | None = None) -> str:
            return self._render_text(messages, tools, gen, self._clock())  # type: ignore[arg-type]

        user, user2 = {"role": "user", "content": _U1}, {"role": "user", "content": _U2}
        answer = {"role": "assistant", "content": _A1}
        try:
            plain, with_prompt, answered = render([user]), render([user], True), render([user, answer])
        except ChatTemplateError as e:
            raise ChatTemplateError(f"cannot use this chat template: a user/assistant exchange fails ({e})") from None
        a_at = answered.rfind(_A1)
        if a_at < 0:
            raise ChatTemplateError("cannot use this chat template: it does not render an assistant message's content")
        # A template whose add_generation_prompt text is not how its answers start (the header is
        # already at the end of the user turn) is prompted with the rendering without it.
        suffix = with_prompt[len(plain) :] if with_prompt.startswith(plain) else ""
        continuation = answered[len(plain) : a_at] if answered.startswith(plain) else None
        uses_prompt = not (suffix.strip() and continuation is not None and not self._lcp(suffix, continuation)
                           and suffix.strip() not in continuation)
        prompt = with_prompt if uses_prompt else plain
        end_of_turn = answered[a_at + len(_A1) :].strip()

        next_turn: list[str] = []
        history_end = ""
        try:
            followed = render([user, answer, user2])
            between = followed[followed.rfind(_A1) + len(_A1) : followed.find(_U2)]
            marker = self._leading_added(between.lstrip()) or ("" if end_of_turn else between.rstrip())
            if not end_of_turn and marker:
                next_turn.append(marker)
            elif marker and marker != end_of_turn:
                history_end = marker
        except ChatTemplateError:
            pass

        think_open = think_close = ""
        after_think: str | None = None
        try:
            reasoned = render([user, {**answer, "thinking": _R1}])
            body = reasoned[self._lcp(prompt, reasoned) :]
            r_at, a_at2 = body.find(_R1), body.find(_A1)
            if 0 <= r_at < a_at2:
                between = body[r_at + len(_R1) : a_at2]
                think_open, think_close = body[:r_at].strip(), between.strip()
                after_think = between[between.index(think_close) + len(think_close) :] if think_close else None
        except ChatTemplateError:
            pass
        if not think_close:
            # A template that ignores reasoning fields but opens a think block in its generation
            # prompt (e.g. Nemotron's `<think>\n\n`) has the model write `...</think>` itself.
            opened = re.search(r"<(\w*think\w*)>\s*$", with_prompt[len(plain) :])
            if opened and f"</{opened.group(1)}>" in self._template:
                think_open, think_close, after_think = f"<{opened.group(1)}>", f"</{opened.group(1)}>", None
            else:
                think_open = ""
        tail = answered[a_at + len(_A1) :]
        before_end = tail[: tail.index(end_of_turn)] if end_of_turn else ""
        before_end = before_end if not before_end.strip() else ""

        tool_format, tool_call_end, as_text = self._probe_tools(render, user, prompt, uses_prompt, end_of_turn,
                                                                think_close, next_turn)
        self._arguments_as_text = as_text
        header = with_prompt[len(plain) :] if with_prompt.startswith(plain) else ""
        return TemplateFacts(uses_prompt, answered.startswith(prompt), end_of_turn, tuple(next_turn), tool_call_end,
                             history_end, header, think_open, think_close, after_think, before_end, tool_format,
                             as_text)

    def _probe_tools(self, render, user, prompt: str, uses_prompt: bool, end_of_turn: str, think_close: str,
                     next_turn: list[str]) -> tuple[str | None, str, bool]:
        """(tool format, tool-call end token, arguments as text), trying arguments as objects, then as
        JSON text (some templates concatenate them as strings)."""
        found: tuple[str | None, str, bool] = (None, "", False)
        for as_text in (False, True):
            self._arguments_as_text = as_text
            try:
                result = self._probe_tool_format(render, user, uses_prompt, end_of_turn, think_close, next_turn)
            except ChatTemplateError:
                continue
            if result[0] not in (None, "unknown"):
                found = (*result, as_text)
                break
            if found[0] is None and result[0] is not None:
                found = (*result, as_text)
        self._arguments_as_text = False
        return found

    def _probe_tool_format(self, render, user, uses_prompt: bool, end_of_turn: str, think_close: str,
                           next_turn: list[str]) -> tuple[str | None, str]:
        empty = {"role": "assistant", "content": ""}
        calls1 = {**empty, "tool_calls": [_probe_call(1)]}
        result = {"role": "tool", "content": "Probe result.", "tool_call_id": "call_probe_0001", "name": "probe_tool"}
        one = render([user, calls1], tools=[_PROBE_TOOL])
        if one == render([user, empty], tools=[_PROBE_TOOL]):
            return None, ""  # the template ignores tool calls
        prompt = render([user], uses_prompt, tools=[_PROBE_TOOL])
        # A token that ends tool-call turns but appears once per turn, not once per call.
        tool_call_end = ""
        try:
            two = render([user, {**empty, "tool_calls": [_probe_call(1), _probe_call(2)]}], tools=[_PROBE_TOOL])
        except ChatTemplateError:
            two = one
        last = two.rstrip()
        token = self._trailing_added(last)
        if token and token != end_of_turn and last[self._lcp(prompt, last) :].count(token) == 1:
            tool_call_end = token
        if not end_of_turn:
            try:
                followed = render([user, calls1, result], tools=[_PROBE_TOOL])
                k = self._lcp(one.rstrip(), followed)
                marker = self._leading_added(followed[k : followed.find("Probe result.")].lstrip())
                if marker and marker not in next_turn:
                    next_turn.append(marker)
            except ChatTemplateError:
                pass
        body = one[self._lcp(prompt, one) :].rstrip()
        for marker in (end_of_turn, tool_call_end):
            if marker and marker in body:
                body = body[: body.index(marker)]
        if think_close and think_close in body:
            body = body.split(think_close, 1)[1].lstrip("\n")
        for name, split in TOOL_CALL_FORMATS.items():
            try:
                _, calls = split(body)
            except ParseError:
                continue
            if [(c["function"]["name"], arguments_object(c)) for c in calls] == [("probe_tool", _PROBE_ARGS)]:
                return name, tool_call_end
        return "unknown", tool_call_end
