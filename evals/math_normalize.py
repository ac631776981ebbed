"""String-level work for the math graders: canonical answer strings, answer structures, plain numbers.

Everything here is cheap and free of sympy, so the graders can settle most comparisons in-process
before anything is sent to the symbolic worker (`evals/latex_sympy.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

# Decimal answers are approximations: they match within this relative tolerance.
REL_TOL = 1e-6

_UNICODE = {"\u2212": "-", "\u2013": "-", "\u00d7": "\\times ", "\u00b7": "\\cdot ", "\u03c0": "\\pi ",
            "\u221e": "\\infty ", "\u221a": "\\sqrt", "\u2264": "\\leq ", "\u2265": "\\geq ", "\u2260": "\\neq ",
            "\u222a": "\\cup ", "\u00b0": "^\\circ"}
_COMMAND_ALIASES = {"dfrac": "\\frac", "tfrac": "\\frac", "dbinom": "\\binom", "tbinom": "\\binom",
                    "le": "\\leq", "ge": "\\geq", "ne": "\\neq", "varnothing": "\\emptyset", "lbrace": "\\{",
                    "rbrace": "\\}", "lvert": "|", "rvert": "|", "vert": "|", "lt": "<", "gt": ">"}
_DROPPED_COMMANDS = re.compile(r"left|right|[bB]igg?[lr]?|displaystyle|textstyle|quad|qquad")
_DEGREES_RE = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degrees?(?![a-zA-Z])")
_TEXT_COMMANDS = r"boxed|fbox|text|textbf|textit|textrm|textnormal|texttt|textsf|mathrm|mathbf|mathit|mathsf|mbox|hbox"
_TEXT_RE = re.compile(rf"\\(?:{_TEXT_COMMANDS})\s*\{{")
_UNIT_TEXT_RE = re.compile(r"[\sA-Za-z./]*")
_UNIT_WORDS = (r"(?:sq(?:uare)?\s+)?units?|cm|mm|km|m(?:et(?:er|re)s?)|inch(?:es)?|feet|foot|ft|yards?|miles?|mph|"
               r"hours?|hrs?|minutes?|mins?|seconds?|secs?|days?|weeks?|months?|years?|dollars?|cents?|"
               r"pounds?|lbs?|ounces?|oz|kg|grams?|liters?|litres?|gallons?")
_TRAILING_UNIT_RE = re.compile(rf"(?<=[\d}}])\s+(?:{_UNIT_WORDS})(?:\^\{{?\d\}}?)?$")
_THOUSANDS_RE = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d])")
_ASSIGNMENT_RE = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*(?:=|\\in(?![a-zA-Z]))\s*(?P<rhs>[^=]+)$")
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d{1,3})?"
_NUMBER_RE = re.compile(rf"[+-]?{_NUMBER}")
_RATIO_RE = re.compile(rf"(?P<sign>[+-]?)(?P<num>[+-]?{_NUMBER})/(?P<den>[+-]?{_NUMBER})")
_FRAC_RE = re.compile(rf"(?P<sign>[+-]?)\\frac\{{(?P<num>[+-]?{_NUMBER})\}}\{{(?P<den>[+-]?{_NUMBER})\}}")
_MIXED_RE = re.compile(r"(?P<sign>[+-]?)(?P<whole>\d+)\\frac\{(?P<num>\d+)\}\{(?P<den>\d+)\}")
_BRACED_COMMAND_RE = re.compile(r"\\(frac|binom|sqrt)(?![a-zA-Z])")
_MATRIX_RE = re.compile(r"\\begin\{(?P<env>[pbvBV]?matrix|array)\}(?P<body>.*)\\end\{(?P=env)\}", re.DOTALL)
# Names the symbolic parser knows: such a "word" is an expression, not a text answer.
_MATH_WORDS = {"pi", "sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "inf", "infty"}
_OPENERS, _CLOSERS = "([{", ")]}"


def find_group_end(s: str, start: int) -> int:
    """Index of the bracket closing the one at `start`, or -1.

    A brace is closed by a brace; `(` and `[` by either `)` or `]`, since intervals mix them.
    """
    openers, closers = ("{", "}") if s[start] == "{" else ("([", ")]")
    depth = 0
    for i in range(start, len(s)):
        if s[i] in openers:
            depth += 1
        elif s[i] in closers:
            depth -= 1
            if depth == 0:
                return i
    return -1


def normalize_math_answer(text: str) -> str:
    """Canonical form of a LaTeX or plain-text answer, for string comparison and for parsing.

    Drops math delimiters, sizing and spacing commands, degree signs, `\\%`, `\\$`, text wrappers
    (kept as the answer when they are the whole answer, dropped as units after a value), trailing
    unit words and periods, thousands separators, a leading `x =` or `x \\in`, and parentheses
    around a single item (`(B)` -> `B`); writes `\\dfrac`/`\\tfrac` as `\\frac`, braces the
    arguments of `\\frac12` and `\\sqrt2`, and writes plain numbers canonically (`.50` -> `0.5`).
    A percent sign is dropped like a unit: `50\\%` normalizes to `50`, not to `0.5`.
    """
    s = "".join(_UNICODE.get(ch, ch) for ch in text).strip()
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"^\\[(\[]|\\[)\]]$", "", s)
    s = re.sub(r"\\left\.|\\right\.", "", s)
    s = re.sub(r"(\d),\\!\s*(?=\d{3})|(\d)\{,\}(?=\d{3})", r"\1\2", s)
    s = re.sub(r"(?<!\\)\\[!,;:> ]|~", " ", s)
    s = _DEGREES_RE.sub("", s)
    s = re.sub(r"\\([a-zA-Z]+)", _rename_command, s)
    s = re.sub(r"\s*\\text\s*\{\s*(?:and|or)\s*\}\s*|\s+(?:and|or)\s+", ",", s)
    s = _strip_text_wrappers(s)
    s = _TRAILING_UNIT_RE.sub("", s.strip())
    s = _brace_arguments(s)
    if s[:1] not in ("(", "[", "\\"):  # inside brackets, `(1,234)` is a pair
        s = _THOUSANDS_RE.sub(lambda m: m.group().replace(",", ""), s)
    s = _collapse_spaces(s).rstrip(".")
    s = re.sub(r"([\^_])\{(\w)\}", r"\1\2", s)
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)
    if match := _ASSIGNMENT_RE.match(s):
        s = match["rhs"]
    return _canonical_number(_unwrap_parentheses(s))


def _rename_command(match: re.Match[str]) -> str:
    name = match[1]
    if _DROPPED_COMMANDS.fullmatch(name):
        return " "
    return _COMMAND_ALIASES.get(name, match[0])


def _strip_text_wrappers(s: str) -> str:
    while match := _TEXT_RE.search(s):
        end = find_group_end(s, match.end() - 1)
        if end < 0:
            return s
        content, before, after = s[match.end():end], s[:match.start()], s[end + 1:]
        if before.strip() and _UNIT_TEXT_RE.fullmatch(content):
            s = before + re.sub(r"^\s*\^\s*\{?\d\}?", "", after)
        else:
            s = before + content + after
    return s


def _brace_arguments(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\sqrt2` -> `\\sqrt{2}`, at any depth."""
    out, i = [], 0
    while match := _BRACED_COMMAND_RE.search(s, i):
        out.append(s[i:match.end()])
        i = match.end()
        if match[1] == "sqrt" and (root := re.match(r"\s*\[", s[i:])):
            end = find_group_end(s, i + root.end() - 1)
            if end < 0:
                break
            out.append("[" + _brace_arguments(s[i + root.end():end]) + "]")
            i = end + 1
        for _ in range(1 if match[1] == "sqrt" else 2):
            argument, i = _read_argument(s, i)
            if argument is None:
                break
            out.append("{" + _brace_arguments(argument) + "}")
    out.append(s[i:])
    return "".join(out)


def _read_argument(s: str, i: int) -> tuple[str | None, int]:
    while i < len(s) and s[i].isspace():
        i += 1
    if i >= len(s):
        return None, i
    if s[i] == "{":
        end = find_group_end(s, i)
        return (None, i) if end < 0 else (s[i + 1:end], end + 1)
    if command := re.match(r"\\[a-zA-Z]+", s[i:]):
        return command.group(), i + command.end()
    return s[i], i + 1


def _collapse_spaces(s: str) -> str:
    """Drop whitespace, except the one space that ends a command before a letter (`\\cot x`)."""
    def keep(match: re.Match[str]) -> str:
        command = match[1] or ""
        return command + " " if command and match[2].isalpha() else command

    return re.sub(r"(\\[a-zA-Z]+)?\s+(?=(.?))", keep, s).strip()


def _unwrap_parentheses(s: str) -> str:
    while len(s) > 2 and (s[0], s[-1]) in (("(", ")"), ("{", "}")) and find_group_end(s, 0) == len(s) - 1:
        if len(split_top_level(s[1:-1], ",")) > 1:
            break
        s = s[1:-1]
    return s


def _canonical_number(s: str) -> str:
    if not _NUMBER_RE.fullmatch(s) or "e" in s:
        return s
    try:
        text = format(Decimal(s).normalize(), "f")
    except InvalidOperation:
        return s
    return "0" if text == "-0" else text


def split_top_level(s: str, separator: str) -> list[str]:
    """`s` split on `separator` where it is outside all brackets (a command separator must end there)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        if s[i] in _OPENERS:
            depth += 1
        elif s[i] in _CLOSERS:
            depth -= 1
        elif depth == 0 and s.startswith(separator, i) and not (
                separator[-1].isalpha() and s[i + len(separator):i + len(separator) + 1].isalpha()):
            parts.append(s[start:i])
            start = i + len(separator)
            i = start
            continue
        i += 1
    parts.append(s[start:])
    return parts


@dataclass(frozen=True)
class Structure:
    """An answer made of several items: a tuple, interval, set, list, union or matrix."""

    kind: str  # "()", "[)", ... for tuples and intervals; "unordered", "union", "matrix<r>x<c>"
    items: tuple[str, ...]
    ordered: bool


def split_structure(s: str) -> Structure | None:
    """The structure of a normalized answer, or None for a single expression.

    Bare comma lists and `\\{...\\}` sets are unordered, and `a \\pm b` is the unordered pair
    `a + b, a - b`; tuples, intervals and matrices are ordered.
    """
    if matrix := _MATRIX_RE.fullmatch(s):
        body = re.sub(r"^\{[lcr|]*\}", "", matrix["body"]) if matrix["env"] == "array" else matrix["body"]
        rows = [row for row in split_top_level(body, "\\\\") if row.strip()]
        cells = [split_top_level(row, "&") for row in rows]
        if len({len(row) for row in cells}) != 1:
            return None
        return Structure(f"matrix{len(cells)}x{len(cells[0])}", tuple(c for row in cells for c in row), True)
    if len(union := split_top_level(s, "\\cup")) > 1:
        return Structure("union", tuple(union), False)
    if s.startswith("\\{") and s.endswith("\\}") and find_group_end(s, 1) == len(s) - 1:
        return Structure("unordered", tuple(_expand_plus_minus(split_top_level(s[2:-2], ","))), False)
    if s[:1] in ("(", "[") and s[-1:] in (")", "]") and find_group_end(s, 0) == len(s) - 1:
        items = split_top_level(s[1:-1], ",")
        return Structure(s[0] + s[-1], tuple(items), True) if len(items) > 1 else None
    items = _expand_plus_minus(split_top_level(s, ","))
    return Structure("unordered", tuple(items), False) if len(items) > 1 else None


def _expand_plus_minus(items: list[str]) -> list[str]:
    expanded = []
    for item in items:
        if item.count("\\pm") + item.count("\\mp") == 1:
            plus, minus = ("+", "-") if "\\pm" in item else ("-", "+")
            sign = re.compile(r"\\[pm]m(?![a-zA-Z])")
            expanded += [sign.sub(plus, item), sign.sub(minus, item)]
        else:
            expanded.append(item)
    return expanded


def is_word(s: str) -> bool:
    """A text answer (`Evelyn`, `east`): compared as text, never as a product of symbols."""
    return re.fullmatch(r"[A-Za-z]{2,}", s) is not None and s.lower() not in _MATH_WORDS


@dataclass(frozen=True)
class Number:
    value: Fraction
    decimal: bool  # written with a decimal point or exponent: an approximation


def parse_number(s: str) -> Number | None:
    """A normalized answer that is a plain number: `12`, `-0.5`, `3/4`, `\\frac{3}{4}`, `1\\frac{4}{5}`."""
    if len(s) > 80:
        return None
    try:
        if _NUMBER_RE.fullmatch(s):
            return Number(Fraction(s), _is_decimal(s))
        if match := _MIXED_RE.fullmatch(s):
            value = int(match["whole"]) + Fraction(int(match["num"]), int(match["den"]))
            return Number(-value if match["sign"] == "-" else value, False)
        if match := _RATIO_RE.fullmatch(s) or _FRAC_RE.fullmatch(s):
            value = Fraction(match["num"]) / Fraction(match["den"])
            return Number(-value if match["sign"] == "-" else value, _is_decimal(match["num"] + match["den"]))
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _is_decimal(s: str) -> bool:
    return "." in s or "e" in s


def numbers_equal(a: Number, b: Number) -> bool:
    """Exact for exact numbers (large integers that differ by 1 differ), else within REL_TOL."""
    if a.value == b.value:
        return True
    if not (a.decimal or b.decimal):
        return False
    return abs(a.value - b.value) <= REL_TOL * max(abs(a.value), abs(b.value))
