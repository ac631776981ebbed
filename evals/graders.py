"""Graders: compare a model's answer text with the reference answer.

The math graders, shared by the RL loop and the eval runner, work in three steps:

1. extract the final answer from a response (`extract_final_answer`, `extract_boxed`,
   `extract_gsm8k_answer`);
2. normalize both answers to canonical strings (`normalize_math_answer`);
3. compare them (`math_equal`): equal strings, then structures item by item (tuples, intervals,
   sets, lists, matrices), then plain numbers, all in-process; only what is left goes to sympy,
   in a separate worker process that is killed and replaced when it runs past the timeout, so a
   comparison never hangs (it is then False).

`grade_gsm8k` and `grade_math` put the steps together.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from evals.math_normalize import Structure, is_word, normalize_math_answer, numbers_equal, parse_number, split_structure

__all__ = ["DEFAULT_TIMEOUT_S", "exact_match", "extract_boxed", "extract_final_answer", "extract_gsm8k_answer",
           "grade_gsm8k", "grade_math", "math_equal", "normalize", "normalize_math_answer"]

DEFAULT_TIMEOUT_S = 5.0
_LOG = logging.getLogger(__name__)
_WORKER_STARTUP_TIMEOUT_S = 60.0  # importing sympy in a fresh process; not counted in a comparison's timeout

_MAX_ANSWER_CHARS = 1000  # longer "answers" are garbage: compared as text, in linear time

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_SPACES_RE = re.compile(r"\s*")
_BARE_TOKEN_RE = re.compile(r"[^\s${}]+")
_GSM8K_NUMBER_RE = re.compile(r"-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")
_ANSWER_PHRASE_RE = re.compile(r"\banswer(?:\s+is|\s*:)[\s:*]*(?P<answer>[^\n]+)", re.IGNORECASE)
_LAST_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def normalize(text: str) -> str:
    return " ".join(text.strip().split())


def exact_match(answer: str, reference: str) -> bool:
    """Equal after trimming and collapsing whitespace."""
    return normalize(answer) == normalize(reference)


def extract_boxed(text: str) -> str | None:
    """The content of the last well-formed `\\boxed{...}` or `\\fbox{...}` (nested braces allowed),
    or the token after `\\boxed ` (`\\boxed 5`); None when there is none or it is empty."""
    boxes = list(_BOXED_RE.finditer(text))
    closing = _matching_braces(text) if boxes else {}
    for box in reversed(boxes):
        start = _SPACES_RE.match(text, box.end()).end()
        if text.startswith("{", start):
            content = text[start + 1:closing[start]].strip() if start in closing else ""
        else:
            token = _BARE_TOKEN_RE.match(text, start)
            content = token.group() if token else ""
        if content:
            return content
    return None


def _matching_braces(text: str) -> dict[int, int]:
    """Index of each balanced `{` to that of its `}`, in one pass (responses can hold many boxes)."""
    closing, open_braces = {}, []
    for i, char in enumerate(text):
        if char == "{":
            open_braces.append(i)
        elif char == "}" and open_braces:
            closing[open_braces.pop()] = i
    return closing


def extract_gsm8k_answer(text: str) -> str | None:
    """The number after the last `####` (GSM8K's gold format), without thousands separators:
    `#### 1,234` -> `1234`; None when there is no `####` or no number after it."""
    _, marker, after = text.rpartition("####")
    number = _GSM8K_NUMBER_RE.search(after.split("\n", 1)[0]) if marker else None
    return number.group().replace(",", "") if number else None


def extract_final_answer(text: str) -> str | None:
    """The final answer of a model response, from the first of these that is present:

    1. the last `\\boxed{...}` (or `\\fbox{...}`, `\\boxed 5`);
    2. the number after the last `####`;
    3. the last "The answer is X" / "Final answer: X" phrase, up to the end of its line or sentence
       (the inside of `$...$` when X is written in math mode);
    4. the last number in the text.

    None when the text has none of them.
    """
    for extract in (extract_boxed, extract_gsm8k_answer, _extract_answer_phrase, _extract_last_number):
        answer = extract(text)
        if answer:
            return answer
    return None


def _extract_answer_phrase(text: str) -> str | None:
    matches = list(_ANSWER_PHRASE_RE.finditer(text))
    if not matches:
        return None
    phrase = matches[-1]["answer"]
    if math := re.search(r"\$+([^$]+)\$+", phrase):
        phrase = math[1]
    phrase = re.split(r"\.(?:\s|$)", phrase.replace("*", ""), maxsplit=1)[0]
    return phrase.strip() or None


def _extract_last_number(text: str) -> str | None:
    numbers = _LAST_NUMBER_RE.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def math_equal(answer: str | None, reference: str | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether an answer equals the reference, both LaTeX or plain text (see `normalize_math_answer`).

    Equal when any of these holds:
    - the normalized strings are equal (text answers like `Evelyn` compare case-insensitively and
      only as text);
    - both are tuples, intervals, matrices (same brackets and shape, item by item in order), or
      sets, lists or unions (same items in any order); `a \\pm b` is the list `a + b, a - b`;
    - both are plain numbers (integers, decimals, `a/b`, `\\frac{a}{b}`, mixed numbers) that are
      equal; decimals are approximations and match within a relative 1e-6, exact numbers exactly;
    - sympy shows them equal (`2\\sqrt{3}` and `\\sqrt{12}`; equations `a = b` when `a - b` are
      constant multiples), in a worker process, within `timeout_s` for the whole comparison.

    Percentages are not converted: `50\\%` equals `50`, not `0.5` or `\\frac{1}{2}`, since either
    reading of a bare number would accept wrong answers to the other kind of question.
    """
    if answer is None or reference is None:
        return False
    if max(len(answer), len(reference)) > _MAX_ANSWER_CHARS:
        return exact_match(answer, reference)
    deadline = time.monotonic() + timeout_s
    try:
        return _equal(normalize_math_answer(answer), normalize_math_answer(reference), deadline)
    except RecursionError:  # structures nested hundreds deep
        return False


def _equal(answer: str, reference: str, deadline: float) -> bool:
    if not answer or not reference:
        return False
    if answer == reference:
        return True
    structures = split_structure(answer), split_structure(reference)
    if structures[0] is not None or structures[1] is not None:
        return None not in structures and _structures_equal(*structures, deadline)
    if is_word(answer) or is_word(reference):
        return answer.casefold() == reference.casefold()
    numbers = parse_number(answer), parse_number(reference)
    if numbers[0] is not None and numbers[1] is not None:
        return numbers_equal(*numbers)
    return _WORKER.equal(answer, reference, deadline - time.monotonic())


def _structures_equal(answer: Structure, reference: Structure, deadline: float) -> bool:
    if answer.kind != reference.kind or len(answer.items) != len(reference.items):
        return False
    items = [normalize_math_answer(item) for item in answer.items]
    references = [normalize_math_answer(item) for item in reference.items]
    if answer.ordered:
        return all(_equal(a, r, deadline) for a, r in zip(items, references))
    unmatched = list(references)
    for item in items:
        match = next((r for r in unmatched if _equal(item, r, deadline)), None)
        if match is None:
            return False
        unmatched.remove(match)
    return True


class _SymbolicWorker:
    """One `evals/latex_sympy.py` process, shared by all threads, replaced after a timeout or crash.

    A plain subprocess rather than multiprocessing: it starts clean (no fork of a parent that may
    hold torch threads, no re-import of the parent's `__main__`) and works from daemonic processes.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def equal(self, answer: str, reference: str, timeout_s: float) -> bool:
        """sympy's verdict, or False when it takes longer than `timeout_s` (the worker is then replaced)."""
        if timeout_s <= 0:
            return False
        with self._lock:
            process = self._running()
            if process is None:
                return False
            try:
                process.stdin.write(json.dumps([answer, reference]) + "\n")
                process.stdin.flush()
            except OSError:
                self._stop()
                return False
            reply = self._read_line(process, timeout_s)
            if reply is None:
                self._stop()
                return False
            return json.loads(reply) is True

    def _running(self) -> subprocess.Popen[str] | None:
        if self._process is not None and self._process.poll() is None:
            return self._process
        worker = Path(__file__).with_name("latex_sympy.py")
        # -P: the script's folder (evals/) must not shadow standard modules on sys.path
        self._process = subprocess.Popen([sys.executable, "-P", str(worker)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, encoding="utf-8")
        if self._read_line(self._process, _WORKER_STARTUP_TIMEOUT_S) != "ready":
            _LOG.warning("the sympy worker %s did not start: symbolic comparisons are False", worker)
            self._stop()
        return self._process

    @staticmethod
    def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str | None:
        # Each reply is one short line written at once, so a readable pipe holds a whole line.
        readable, _, _ = select.select([process.stdout], [], [], timeout_s)
        line = process.stdout.readline() if readable else ""
        return line.strip() or None

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        with self._lock:
            self._stop()

    def forget(self) -> None:
        """In a forked child: leave the parent's worker and pipes to the parent, start afresh."""
        self._process = None
        self._lock = threading.Lock()


_WORKER = _SymbolicWorker()
atexit.register(_WORKER.close)
os.register_at_fork(after_in_child=_WORKER.forget)


def grade_gsm8k(response: str, gold_answer_field: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether a response's final answer equals the gold number of a GSM8K `answer` field
    (the solution ending in `#### n`; a bare number is accepted too)."""
    gold = extract_gsm8k_answer(gold_answer_field) or gold_answer_field.strip()
    return math_equal(extract_final_answer(response), gold, timeout_s)


def grade_math(response: str, reference_answer: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether a response's final answer (see `extract_final_answer`) equals the reference answer."""
    return math_equal(extract_final_answer(response), reference_answer, timeout_s)
