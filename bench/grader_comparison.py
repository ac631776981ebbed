"""Math graders side by side on the gold answers of ../shared/data and on rewrites of them.

    python -m bench.grader_comparison [--data ../shared/data] [--limit N] [--out bench/results/graders.json]

For every gold answer of each benchmark file (GSM8K test, MATH-500, AIME 2024, AMC 2023, SVAMP,
Minerva math) it builds replies ending in ``\\boxed{...}`` (or, for ``answer_phrase``, "The final
answer is ...") holding:

- ``gold``: the gold answer itself;
- equivalent rewrites (each where it applies; string transforms, deterministic): spaces around
  operators, ``\\dfrac``, ``\\left( \\right)``, ``n.0``, thousands separators, ``\\frac{2n}{2}``,
  a terminating decimal as a fraction and back, ``a/b`` for ``\\frac{a}{b}``, the two terms of a
  sum swapped, a list of solutions in reverse order, ``\\frac{\\pi}{n}`` as ``\\frac{1}{n}\\pi``,
  ``k\\sqrt{m}`` as ``\\sqrt{k^2 m}``, ``y = <gold>`` (a name the answer does not use), no
  ``^\\circ``, ``4.5e33`` as ``4.5 \\times 10^{33}``, the answer in a sentence instead of a box;
- non-equivalent rewrites: ``n + 1``, ``-n``, the last digit changed (not in a unit), a fraction
  upside down, a sum turned into a difference, ``\\sqrt{m + 1}``, an ordered pair swapped;

and asks each grader whether the reply matches the gold answer: ours (``evals.graders.grade_math``
as of the commit this script is run at) and ``math-verify`` (``verify(parse("$gold$"), parse(reply))``,
the library TRL's math rewards use). It writes per set and per rewrite kind how many verdicts each
grader got right, and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

SETS = {"gsm8k": "gsm8k", "math500": "math500", "aime24": "aime24", "amc23": "amc23", "svamp": "svamp",
        "minerva_math": "minerva_math"}
_INT_RE = re.compile(r"-?\d+")
_DEC_RE = re.compile(r"-?\d+\.\d+")
_FRAC_RE = re.compile(r"(-?)\\frac\{(\d+)\}\{(\d+)\}")
_SQRT_RE = re.compile(r"(\d+)\\sqrt\{(\d+)\}")
_SCI_RE = re.compile(r"(\d+(?:\.\d+)?)e(-?\d+)")


def _top_level_split(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside braces and brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "{([":
            depth += 1
        elif char in "})]":
            depth -= 1
        elif char == sep and depth == 0 and i > 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _simple_sum(gold: str) -> list[str] | None:
    """The two terms of a top-level ``a + b`` (no other top-level + or -, no = , < > or text), else None."""
    if any(c in gold for c in "=,<>") or "\\text" in gold or gold.startswith("-"):
        return None
    terms = [t.strip() for t in _top_level_split(gold, "+")]
    if len(terms) != 2 or not all(terms) or any(len(_top_level_split(t, "-")) > 1 for t in terms):
        return None
    return terms


def _terminating(fraction: Fraction) -> str | None:
    denominator = fraction.denominator
    for p in (2, 5):
        while denominator % p == 0:
            denominator //= p
    if denominator != 1:
        return None
    text = f"{float(fraction):.12f}".rstrip("0").rstrip(".")
    return text if Fraction(text) == fraction else None


def equivalent(gold: str) -> dict[str, str]:
    out: dict[str, str] = {}
    g = gold.strip()
    spaced = re.sub(r"\s*([+=]|,(?!\\!|\d{3})|(?<=[^\s^_{(,])-)\s*", r" \1 ", g).strip()  # not 1,000
    if "\\text" not in g and spaced != g:
        out["spaces"] = spaced
    if "\\frac" in g:
        out["dfrac"] = g.replace("\\frac", "\\dfrac")
    if ("(" in g or "[" in g) and "\\left" not in g:
        out["left_right"] = g.replace("(", "\\left(").replace(")", "\\right)").replace("[", "\\left[") \
            .replace("]", "\\right]")
    if _INT_RE.fullmatch(g):
        n = int(g)
        out["int_decimal"] = f"{n}.0"
        out["frac_of_int"] = f"\\frac{{{2 * n}}}{{2}}"
        if abs(n) >= 1000:
            out["thousands"] = f"{n:,}"
    if _DEC_RE.fullmatch(g) and len(g.split(".")[1]) <= 4:
        value = Fraction(g)
        out["decimal_to_frac"] = f"{'-' if value < 0 else ''}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"
    if (frac := _FRAC_RE.fullmatch(g)) and int(frac[3]) != 0:
        sign, num, den = frac[1], int(frac[2]), int(frac[3])
        out["slash_frac"] = f"{sign}{num}/{den}"
        if (decimal := _terminating(Fraction(num, den))) is not None:
            out["frac_to_decimal"] = sign + decimal
    if (terms := _simple_sum(g)) is not None and terms[0] != terms[1]:
        out["sum_swap"] = f"{terms[1]}+{terms[0]}"
    if (split := re.fullmatch(r"\\frac\{(\\pi|\\sqrt\{\d+\})\}\{(\d+)\}", g)) is not None:
        out["frac_split"] = f"\\frac{{1}}{{{split[2]}}}{split[1]}"
    items = _top_level_split(g, ",")
    if len(items) > 1 and not re.search(r",(?:\\!|\s*\d{3}(?!\d))", g) and not re.match(r"^\s*(?:\\left)?[(\[]", g):
        out["list_reversed"] = ", ".join(item.strip() for item in reversed(items))  # solutions in another order
    if (root := _SQRT_RE.fullmatch(g)) is not None:
        out["sqrt_inside"] = f"\\sqrt{{{int(root[1]) ** 2 * int(root[2])}}}"
    variable = next(v for v in "yzwabc" if v not in g)  # a name the answer does not use
    if "=" not in g and "," not in g and "\\text" not in g and "\\" not in g[:1]:
        out["assignment"] = f"{variable} = {g}"
    if "^\\circ" in g:
        out["no_degrees"] = g.replace("^\\circ", "").replace("^{\\circ}", "")
    if (sci := _SCI_RE.fullmatch(g)) is not None:
        out["times_ten"] = f"{sci[1]} \\times 10^{{{int(sci[2])}}}"
    if _INT_RE.fullmatch(g) or _DEC_RE.fullmatch(g):
        out["answer_phrase"] = g  # said in a sentence, not boxed (see reply())
    return out


def different(gold: str) -> dict[str, str]:
    out: dict[str, str] = {}
    g = gold.strip()
    if _INT_RE.fullmatch(g):
        out["plus_one"] = str(int(g) + 1)
        if int(g) != 0:
            out["negated"] = str(-int(g))
    elif _DEC_RE.fullmatch(g) and float(g) != 0:
        out["negated"] = g[1:] if g.startswith("-") else f"-{g}"
    digits = [m.start() for m in re.finditer(r"\d", re.sub(r"\\(?:mbox|text)\{[^}]*\}.*", "", g))]  # not in units
    if digits and not _INT_RE.fullmatch(g):
        i = digits[-1]
        out["last_digit"] = g[:i] + str((int(g[i]) + 1) % 10) + g[i + 1:]
    if (frac := _FRAC_RE.search(g)) and frac[2] != frac[3] and int(frac[2]) != 0:
        out["frac_flipped"] = g[:frac.start()] + f"{frac[1]}\\frac{{{frac[3]}}}{{{frac[2]}}}" + g[frac.end():]
    if (terms := _simple_sum(g)) is not None:
        out["sum_to_difference"] = f"{terms[0]}-{terms[1]}"
    if (root := re.search(r"\\sqrt\{(\d+)\}", g)) is not None:
        out["sqrt_changed"] = g[:root.start()] + f"\\sqrt{{{int(root[1]) + 1}}}" + g[root.end():]
    pair = re.fullmatch(r"\(([^,()]+),([^,()]+)\)", g.replace("\\left", "").replace("\\right", "").strip())
    if pair and pair[1].strip() != pair[2].strip():
        out["pair_swapped"] = f"({pair[2].strip()}, {pair[1].strip()})"
    return out


def reply(kind: str, text: str) -> str:
    if kind == "answer_phrase":
        return f"Adding it all up gives the result.\nThe final answer is {text}."
    return f"Working through the problem step by step.\nSo the answer is $\\boxed{{{text}}}$."


def gold_answers(data: Path, limit: int | None) -> dict[str, list[str]]:
    import os

    os.environ["COOKBOOK_EVAL_DATA"] = str(data)
    from evals.benchmarks import get_benchmark

    return {name: [p.reference for p in get_benchmark(name).examples(limit)] for name in SETS}


def ours() -> Callable[[str, str], bool]:
    from evals.graders import grade_math

    return lambda response, gold: bool(grade_math(response, gold))


def math_verify(gold_format: str = "${}$") -> Callable[[str, str], bool]:
    """``gold_format``: how the gold answer is given to ``parse`` (``$...$`` LaTeX, ``\\boxed{...}``, plain)."""
    from math_verify import parse, verify

    def grade(response: str, gold: str) -> bool:
        return bool(verify(parse(gold_format.format(gold)), parse(response)))
    return grade


def compare(golds: dict[str, list[str]], graders: dict[str, Callable[[str, str], bool]]) -> dict:
    counts: dict = {"sets": defaultdict(lambda: defaultdict(int)), "kinds": defaultdict(lambda: defaultdict(int)),
                    "seconds": defaultdict(float), "misses": defaultdict(list)}
    for set_name, answers in golds.items():
        for gold in answers:
            cases = [("gold", gold, True)] + [(k, t, True) for k, t in equivalent(gold).items()] \
                + [(k, t, False) for k, t in different(gold).items()]
            for kind, text, expected in cases:
                group = "gold" if kind == "gold" else "equivalent" if expected else "different"
                counts["sets"][set_name][f"{group}/n"] += 1
                counts["kinds"][kind]["n"] += 1
                for name, grade in graders.items():
                    started = time.perf_counter()
                    verdict = grade(reply(kind, text), gold)
                    counts["seconds"][name] += time.perf_counter() - started
                    if verdict == expected:
                        counts["sets"][set_name][f"{group}/{name}"] += 1
                        counts["kinds"][kind][name] += 1
                    elif len(counts["misses"][name]) < 400:
                        counts["misses"][name].append({"set": set_name, "kind": kind, "gold": gold, "text": text,
                                                       "expected": expected})
    return json.loads(json.dumps(counts))


def table(result: dict, names: list[str]) -> str:
    lines = ["| set | gold answers | equivalent rewrites | non-equivalent rewrites |", "|---|---|---|---|"]
    totals: dict[str, int] = defaultdict(int)
    for set_name, row in result["sets"].items():
        cells = []
        for group in ("gold", "equivalent", "different"):
            n = row.get(f"{group}/n", 0)
            totals[f"{group}/n"] += n
            for name in names:
                totals[f"{group}/{name}"] += row.get(f"{group}/{name}", 0)
            cells.append(f"{n}: " + ", ".join(f"{name} {row.get(f'{group}/{name}', 0)}" for name in names))
        lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
    cells = [f"{totals[f'{g}/n']}: " + ", ".join(f"{name} {totals[f'{g}/{name}']}" for name in names)
             for g in ("gold", "equivalent", "different")]
    lines.append("| **all** | " + " | ".join(cells) + " |")
    lines += ["", "| rewrite | pairs | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for kind, row in sorted(result["kinds"].items()):
        lines.append(f"| {kind} | {row['n']} | " + " | ".join(str(row.get(name, 0)) for name in names) + " |")
    lines += ["", "seconds: " + ", ".join(f"{name} {result['seconds'][name]:.1f}" for name in names)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--limit", type=int, default=None, help="gold answers per set (default: all)")
    parser.add_argument("--out", default="bench/results/grader_comparison.json")
    parser.add_argument("--graders", default="ours,math_verify")
    args = parser.parse_args()
    available = {"ours": ours, "math_verify": math_verify, "math_verify_boxed": lambda: math_verify("\\boxed{{{}}}"),
                 "math_verify_plain": lambda: math_verify("{}")}
    names = [n.strip() for n in args.graders.split(",") if n.strip()]
    graders = {name: available[name]() for name in names}
    result = compare(gold_answers(Path(args.data), args.limit), graders)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(table(result, names))


if __name__ == "__main__":
    main()
