"""Verifiable instructions (IFEval-style): checks that a reply follows "use no commas", "answer in at
least 300 words", "wrap the whole reply in double quotes", ...

:data:`CHECKS` maps an instruction id (IFEval's names, e.g. ``punctuation:no_comma``) to a function
``check(reply, **kwargs) -> bool``; :func:`follows` checks one instruction. Relations are IFEval's:
``"less than"`` (count < n) and ``"at least"`` (count >= n). Counting conventions (written for this
project from the instruction descriptions; close to, not copied from, the reference implementation):
words are runs of letters, digits and apostrophes; sentences end with ``.``, ``!`` or ``?``
followed by a space or the end; paragraphs are separated by a ``***`` line
(``number_paragraphs``) or by a blank line (``nth_paragraph_first_word``); a bullet is a line
starting with ``*`` or ``-`` and a space; a highlight is ``*text*`` on one line.

``language:response_language`` needs the ``langdetect`` package (``pip install langdetect``).

May import ``cookbook.errors`` and the standard library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from cookbook.errors import ConfigError, DataError

_WORD_RE = re.compile(r"[\w']+")
_SENTENCE_END_RE = re.compile(r"[.!?]+(?=\s|$)")
_DIVIDER_RE = re.compile(r"\n\s*\*\s*\*\s*\*\s*\n")
_BULLET_RE = re.compile(r"^\s*(?:\*|-)\s+\S", re.MULTILINE)
_HIGHLIGHT_RE = re.compile(r"\*\*?[^\n*]+\*\*?")
_PLACEHOLDER_RE = re.compile(r"\[[^\]\n]+\]")
_TITLE_RE = re.compile(r"<<[^\n<>]*\S[^\n<>]*>>")
CONSTRAINED_ANSWERS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def _compare(count: int, relation: str, n: int) -> bool:
    if relation == "less than":
        return count < n
    if relation == "at least":
        return count >= n
    raise DataError(f"unknown relation {relation!r} (expected 'less than' or 'at least')")


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def sentences(text: str) -> int:
    """Sentences: text ending with . ! or ? (a final unpunctuated fragment counts too)."""
    ends = _SENTENCE_END_RE.findall(text)
    tail = _SENTENCE_END_RE.split(text)[-1]
    return len(ends) + (1 if words(tail) else 0)


def _existence(reply: str, keywords: list[str]) -> bool:
    return all(re.search(re.escape(k), reply, re.IGNORECASE) for k in keywords)


def _frequency(reply: str, keyword: str, frequency: int, relation: str) -> bool:
    count = len(re.findall(rf"\b{re.escape(keyword)}\b", reply, re.IGNORECASE))
    return _compare(count, relation, frequency)


def _forbidden(reply: str, forbidden_words: list[str]) -> bool:
    return not any(re.search(rf"\b{re.escape(w)}\b", reply, re.IGNORECASE) for w in forbidden_words)


def _letter_frequency(reply: str, letter: str, let_frequency: int, let_relation: str) -> bool:
    return _compare(reply.lower().count(letter.lower()), let_relation, let_frequency)


def _language(reply: str, language: str) -> bool:
    try:
        import langdetect
    except ImportError:
        raise ConfigError("the instruction language:response_language needs langdetect: pip install langdetect") \
            from None
    try:
        return langdetect.detect(reply) == language
    except langdetect.LangDetectException:  # no letters to detect a language from
        return False


def _number_sentences(reply: str, num_sentences: int, relation: str) -> bool:
    return _compare(sentences(reply), relation, num_sentences)


def _number_paragraphs(reply: str, num_paragraphs: int) -> bool:
    parts = _DIVIDER_RE.split("\n" + reply.strip() + "\n")
    return len(parts) == num_paragraphs and all(p.strip() for p in parts)


def _number_words(reply: str, num_words: int, relation: str) -> bool:
    return _compare(len(words(reply)), relation, num_words)


def _nth_paragraph_first_word(reply: str, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    paragraphs = [p for p in re.split(r"\n\s*\n", reply.strip()) if p.strip()]
    if len(paragraphs) != num_paragraphs or not 1 <= nth_paragraph <= len(paragraphs):
        return False
    found = words(paragraphs[nth_paragraph - 1])
    return bool(found) and found[0].lower().strip("'") == first_word.lower()


def _placeholders(reply: str, num_placeholders: int) -> bool:
    return len(_PLACEHOLDER_RE.findall(reply)) >= num_placeholders


def _postscript(reply: str, postscript_marker: str) -> bool:
    marker = re.escape(postscript_marker.strip()).replace(r"\ ", r"\s*")
    return re.search(rf"^\s*{marker}", reply, re.IGNORECASE | re.MULTILINE) is not None


def _bullets(reply: str, num_bullets: int) -> bool:
    return len(_BULLET_RE.findall(reply)) == num_bullets


def _constrained(reply: str) -> bool:
    return any(answer in reply for answer in CONSTRAINED_ANSWERS)


def _highlights(reply: str, num_highlights: int) -> bool:
    return sum(1 for h in _HIGHLIGHT_RE.findall(reply) if h.strip("*").strip()) >= num_highlights


def _sections(reply: str, section_spliter: str, num_sections: int) -> bool:
    parts = re.split(rf"\s?{re.escape(section_spliter.strip())}\s?\d+\s?", reply)
    return len(parts) - 1 >= num_sections


def _json(reply: str) -> bool:
    text = re.sub(r"^```(?:json|JSON)?\s*|\s*```$", "", reply.strip())
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _title(reply: str) -> bool:
    return _TITLE_RE.search(reply) is not None


def _two_responses(reply: str) -> bool:
    parts = [p.strip() for p in reply.split("******")]
    return len(parts) == 2 and all(parts) and parts[0] != parts[1]


def _repeat_prompt(reply: str, prompt_to_repeat: str) -> bool:
    return reply.strip().lower().startswith(prompt_to_repeat.strip().lower())


def _end_checker(reply: str, end_phrase: str) -> bool:
    return reply.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def _capital_frequency(reply: str, capital_frequency: int, capital_relation: str) -> bool:
    capitals = [w for w in words(reply) if w.isupper()]
    return _compare(len(capitals), capital_relation, capital_frequency)


def _all_capitals(reply: str) -> bool:
    return reply == reply.upper() and any(c.isalpha() for c in reply)


def _all_lowercase(reply: str) -> bool:
    return reply == reply.lower() and any(c.isalpha() for c in reply)


def _no_comma(reply: str) -> bool:
    return "," not in reply


def _quotation(reply: str) -> bool:
    text = reply.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


CHECKS: dict[str, Callable[..., bool]] = {
    "keywords:existence": _existence,
    "keywords:frequency": _frequency,
    "keywords:forbidden_words": _forbidden,
    "keywords:letter_frequency": _letter_frequency,
    "language:response_language": _language,
    "length_constraints:number_sentences": _number_sentences,
    "length_constraints:number_paragraphs": _number_paragraphs,
    "length_constraints:number_words": _number_words,
    "length_constraints:nth_paragraph_first_word": _nth_paragraph_first_word,
    "detectable_content:number_placeholders": _placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:constrained_response": _constrained,
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:multiple_sections": _sections,
    "detectable_format:json_format": _json,
    "detectable_format:title": _title,
    "combination:two_responses": _two_responses,
    "combination:repeat_prompt": _repeat_prompt,
    "startend:end_checker": _end_checker,
    "change_case:capital_word_frequency": _capital_frequency,
    "change_case:english_capital": _all_capitals,
    "change_case:english_lowercase": _all_lowercase,
    "punctuation:no_comma": _no_comma,
    "startend:quotation": _quotation,
}


def follows(reply: str, instruction: str, kwargs: dict[str, Any] | None = None) -> bool:
    """Whether ``reply`` follows the instruction ``instruction`` (an id of :data:`CHECKS`) with ``kwargs``."""
    check = CHECKS.get(instruction)
    if check is None:
        raise DataError(f"unknown instruction {instruction!r}; known: {', '.join(sorted(CHECKS))}")
    arguments = {k: v for k, v in (kwargs or {}).items() if v is not None}
    try:
        return bool(check(reply, **arguments))
    except TypeError as exc:
        raise DataError(f"instruction {instruction}: bad arguments {arguments}: {exc}") from None
