"""The conversations of the conformance suite (all text written for these tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


def tool(name: str, description: str, properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required is not None:
        parameters["required"] = required
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


WEATHER = tool(
    "get_weather",
    "Get the current weather for a city.",
    {
        "city": {"type": "string", "description": "City name, e.g. Lyon"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
    },
    ["city"],
)
SEARCH = tool(
    "search",
    "Search a document collection.",
    {
        "query": {"type": "string", "description": "What to look for"},
        "max_results": {"type": "integer", "default": 5},
        "filters": {
            "type": "object",
            "properties": {"site": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["site"],
        },
    },
    ["query"],
)
CLOCK = tool("get_time", "Current time in UTC.", {})
PLOT = tool(
    "plot",
    "Plot points 📈 on a chart.",
    {
        "points": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}},
        "style": {"oneOf": [{"type": "string", "description": "a named style"}, {"type": "object", "default": {}}]},
        "color": {"type": ["string", "null"]},
        "label": {"type": "string", "nullable": True, "description": "Légende"},
        "log_scale": {"type": "boolean", "default": False},
        "weights": {"type": "array", "items": {"type": "number"}, "nullable": True},
        "extra": {},
    },
    ["points"],
)


def s(text: str) -> dict[str, Any]:
    return {"role": "system", "content": text}


def u(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def a(text: Any = "", thinking: str | None = None, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking is not None:
        message["thinking"] = thinking
    if calls:
        message["tool_calls"] = calls
    return message


def call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


def t(text: str, call_id: str) -> dict[str, Any]:
    return {"role": "tool", "content": text, "tool_call_id": call_id}


@dataclass(frozen=True)
class Conversation:
    name: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def has_tool_use(self) -> bool:
        return any(m.get("tool_calls") or m["role"] == "tool" for m in self.messages)

    @property
    def has_parallel_calls(self) -> bool:
        return any(len(m.get("tool_calls") or []) > 1 for m in self.messages)


def _c(name: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *tags: str) -> Conversation:
    return Conversation(name, messages, tools, frozenset(tags))


# Long texts, generated: a few thousand characters of varied words, digits and punctuation.
_WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()
LONG_SYSTEM = " ".join(f"Rule {k}: prefer {_WORDS[k % len(_WORDS)]} over {_WORDS[(3 * k) % len(_WORDS)]}." for k in range(40))
LONG_QUESTION = "\n".join(f"Line {k}: " + ", ".join(_WORDS[(k + j) % len(_WORDS)] for j in range(9)) + "?" for k in range(60))
LONG_ANSWER = "\n\n".join(
    f"Paragraph {k}. " + " ".join(f"{_WORDS[(k * j) % len(_WORDS)]}-{k * j}" for j in range(1, 25)) + "." for k in range(30)
)

WEATHER_CALL = call("get_weather", {"city": "Lyon"}, "call_0001")
WEATHER_RESULT = t('{"temperature": 21, "sky": "clear"}', "call_0001")

CONVERSATIONS: list[Conversation] = [
    # -- plain chat ---------------------------------------------------------------------------
    _c("user_only", [u("What is the capital of France?")]),
    _c("single_turn", [u("What is 2 + 2?"), a("2 + 2 = 4.")]),
    _c("system_single_turn", [s("You are a terse assistant."), u("Name a prime number."), a("7")]),
    _c("system_then_user", [s("You answer in French."), u("How are you?")]),
    _c("multi_turn", [u("Hi!"), a("Hello! How can I help?"), u("Tell me a joke."), a("Why did the chicken cross the road? To get to the other side.")]),
    _c(
        "system_multi_turn",
        [
            s("You are a math tutor."),
            u("What is a derivative?"),
            a("The rate of change of a function."),
            u("And an integral?"),
            a("The accumulated area under a curve."),
            u("Thanks."),
            a("You're welcome!"),
        ],
    ),
    _c("multi_turn_ends_with_user", [s("Be brief."), u("One"), a("Two"), u("Three")]),
    _c("empty_system", [s(""), u("Hello"), a("Hi")]),
    _c("empty_assistant", [u("Say nothing."), a("")]),
    _c("consecutive_users", [u("First question."), u("Actually, a second question."), a("Answering the second one.")]),
    _c("system_mid_conversation", [u("Hello"), a("Hi there"), s("From now on, answer in capitals."), u("ok?"), a("OK!")]),
    _c("assistant_first", [a("Welcome! Ask me anything."), u("What time is it?"), a("I cannot tell the time.")]),
    # -- unicode and whitespace ------------------------------------------------------------------
    _c(
        "unicode",
        [
            s("Réponds en français, s'il te plaît. 日本語もOK。"),
            u("Ça va? Привет! 你好 🤖🎉 — “quotes” ‘single’ «guillemets» ½ ∑ é (NFC) e\u0301 (NFD)"),
            a("Très bien, merci! Всё хорошо. 很好 👍 ∫x dx = x²/2"),
        ],
        None,
        "unicode",
    ),
    _c(
        "whitespace_edges",
        [u("  leading and trailing spaces  \n"), a("\n\nanswer with newlines around\n\n"), u("\tTabbed\tline\r\nwindows line end"), a("  spaced  ")],
        None,
        "whitespace",
    ),
    _c("blank_lines_inside", [u("line one\n\n\nline four"), a("para one\n\npara two\n")], None, "whitespace"),
    _c("markup_like_text", [u("What do <b>bold</b>, &amp; and {braces} mean? 'single' \"double\""), a("HTML tags, an entity, and braces: {x}.")]),
    _c("code_block", [u("Write hello world in Python."), a("```python\nprint('hello world')\n```\nThat prints a greeting.")]),
    _c(
        "content_parts",
        [
            {"role": "system", "content": [{"type": "text", "text": "Part one of the system. "}, {"type": "text", "text": "Part two."}]},
            {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
        ],
    ),
    _c("long_multi_turn", [m for k in range(6) for m in (u(f"Question {k}: what is {k} squared?"), a(f"{k} squared is {k * k}."))]),
    _c("numbers_and_punctuation", [u("2+2=? ... !!! ???"), a("4. Done!!!")]),
    _c("long_content", [s(LONG_SYSTEM), u(LONG_QUESTION), a(LONG_ANSWER)], None, "long"),
    _c("system_no_think", [s("Answer directly. /no_think"), u("Capital of Peru?"), a("Lima.")]),
    # -- thinking --------------------------------------------------------------------------------
    _c("thinking_last", [u("Is 91 prime?"), a("No, 91 = 7 × 13.", thinking="91 is odd. 91 / 7 = 13, so it is composite.")], None, "thinking"),
    _c(
        "thinking_history",
        [
            s("Think step by step."),
            u("What is 12 * 12?"),
            a("144", thinking="12 * 12 = 144."),
            u("And 13 * 13?"),
            a("169", thinking="13 * 13 = 169."),
        ],
        None,
        "thinking",
    ),
    _c("thinking_history_prompt", [u("Capital of Italy?"), a("Rome.", thinking="Easy: Rome."), u("And of Spain?")], None, "thinking"),
    _c(
        "thinking_multiline",
        [u("Sort 3, 1, 2."), a("1, 2, 3", thinking="Step 1: find the smallest, 1.\nStep 2: then 2.\n\nStep 3: then 3.")],
        None,
        "thinking",
    ),
    _c("thinking_without_content", [u("Think about it."), a("", thinking="Hmm, nothing to add.")], None, "thinking"),
    _c("empty_thinking", [u("Quick: 1 + 1?"), a("2", thinking="")], None, "thinking"),
    _c("inline_think_content", [u("Why is the sky blue?"), a("<think>\nRayleigh scattering.\n</think>\n\nShort wavelengths scatter more.")], None, "thinking"),
    _c(
        "tool_response_as_user",
        [
            u("Look up the weather."),
            a("Calling the tool myself.", thinking="I will ask for the result."),
            u("<tool_response>\nsunny\n</tool_response>"),
            a("It is sunny.", thinking="The response says sunny."),
        ],
        None,
        "thinking",
    ),
    _c("thinking_unicode", [u("¿Qué es π?"), a("π ≈ 3.14159", thinking="π es la razón entre circunferencia y diámetro 🥧")], None, "thinking", "unicode"),
    # -- tools -----------------------------------------------------------------------------------
    _c("tools_declared_prompt", [s("You are a weather bot."), u("Weather in Lyon?")], [WEATHER], "tools"),
    _c("tools_without_system", [u("What time is it?"), a("I will check the clock.")], [CLOCK, WEATHER], "tools"),
    _c(
        "tool_call_flow",
        [s("Use tools when needed."), u("Weather in Lyon?"), a("", calls=[WEATHER_CALL]), WEATHER_RESULT, a("It is 21 °C and clear in Lyon.")],
        [WEATHER],
        "tools",
    ),
    _c(
        "tool_call_with_content",
        [u("Weather in Lyon?"), a("Let me look that up.", calls=[WEATHER_CALL]), WEATHER_RESULT, a("Clear skies, 21 °C.")],
        [WEATHER],
        "tools",
    ),
    _c(
        "tool_call_with_thinking",
        [
            u("Weather in Lyon?"),
            a("", thinking="I need the weather tool.", calls=[WEATHER_CALL]),
            WEATHER_RESULT,
            a("21 °C and clear.", thinking="The tool says 21 and clear."),
        ],
        [WEATHER],
        "tools",
        "thinking",
    ),
    _c("tool_call_last", [s("Use tools."), u("Search for renderers."), a("", calls=[call("search", {"query": "renderers", "filters": {"site": "docs"}}, "call_0007")])], [SEARCH], "tools"),
    _c("tool_result_prompt", [u("Weather in Lyon?"), a("", calls=[WEATHER_CALL]), WEATHER_RESULT], [WEATHER], "tools"),
    _c(
        "parallel_tool_calls",
        [
            u("Weather in Lyon and Oslo?"),
            a("", calls=[WEATHER_CALL, call("get_weather", {"city": "Oslo", "unit": "celsius"}, "call_0002")]),
            WEATHER_RESULT,
            t('{"temperature": -3, "sky": "snow"}', "call_0002"),
            a("Lyon: 21 °C clear. Oslo: -3 °C snow."),
        ],
        [WEATHER],
        "tools",
    ),
    _c(
        "multi_step_tools",
        [
            s("You are an agent."),
            u("What time is it, and the weather in Lyon?"),
            a("", calls=[call("get_time", {}, "call_000a")]),
            t("10:30 UTC", "call_000a"),
            a("", calls=[WEATHER_CALL]),
            WEATHER_RESULT,
            a("It is 10:30 UTC and 21 °C in Lyon."),
            u("Thanks!"),
            a("Anytime."),
        ],
        [CLOCK, WEATHER],
        "tools",
    ),
    _c(
        "tool_unicode",
        [u("Météo à Zürich ?"), a("", calls=[call("get_weather", {"city": "Zürich 🇨🇭"}, "call_000z")]), t("Ensoleillé, 18 °C — très agréable", "call_000z"), a("Ensoleillé ☀️, 18 °C.")],
        [WEATHER],
        "tools",
        "unicode",
    ),
    _c("complex_tool_schema", [s("Chart helper."), u("Plot (1, 2) and (3, 4)."), a("Plotted.")], [PLOT, SEARCH, CLOCK], "tools"),
]
