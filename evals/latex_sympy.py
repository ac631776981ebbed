"""Symbolic answer comparison: a small LaTeX-to-sympy parser and the worker process that runs it.

sympy can take minutes (or all memory) on adversarial answers, so the graders never call this
in-process: `evals.graders` runs this file as a script (`python -P latex_sympy.py`) and talks to
it over stdin/stdout, one JSON line `[answer, reference]` in and one JSON line `true`/`false`
out, killing and replacing it when a comparison runs past its timeout. Running the file by path
keeps the worker light: it imports the standard library and sympy only (not the `evals` package,
and not the parent's `__main__`, which may import torch).

The parser is our own recursive descent over normalized answers (see `evals.math_normalize`),
not `sympy.parse_expr`, which evaluates Python code and so must not see model output. It knows
`\\frac`, `\\sqrt[n]{}`, `\\binom`, `^`, `_` subscripts, `\\cdot`, `\\times`, `\\div`, `!`, `|x|`,
floor and ceiling, common functions, Greek letters, `\\pi`, `\\infty`, `e`, `i` (the imaginary
unit) and implicit multiplication (`2\\sqrt{3}`, `3\\pi`, `2x(x+1)`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction

import sympy

REL_TOL = 1e-6  # the same tolerance as evals.math_normalize.REL_TOL, for decimal answers
_MEMORY_LIMIT_BYTES = 4 << 30

_TOKEN_RE = re.compile(r"\s*(?:(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)|(?P<cmd>\\(?:[a-zA-Z]+|[{}|]))"
                       r"|(?P<name>[a-zA-Z]+)|(?P<op>\S))")
_CONSTANTS = {"pi": sympy.pi, "infty": sympy.oo, "inf": sympy.oo, "e": sympy.E, "i": sympy.I}
_FUNCTIONS = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
              "csc": sympy.csc, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
              "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh, "ln": sympy.log, "log": sympy.log,
              "exp": sympy.exp, "sqrt": sympy.sqrt}
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi", "omega",
          "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi", "Omega"}
_MULTIPLY = {"*", "\\cdot", "\\times", "\\ast"}
_DIVIDE = {"/", "\\div"}
_CLOSING = {"(": ")", "[": "]", "{": "}", "\\{": "\\}", "\\lfloor": "\\rfloor", "\\lceil": "\\rceil"}


class ParseError(ValueError):
    pass


def _tokenize(text: str) -> list[str]:
    tokens = []
    for match in _TOKEN_RE.finditer(text.strip()):
        name = match["name"]
        if name is None:
            tokens.append(match.group().strip())
        elif name in _FUNCTIONS or name in ("pi", "infty"):
            tokens.append("\\" + name)
        else:
            tokens += list(name)  # `xy` is x times y
    return tokens


class _Parser:
    """Recursive descent: equation > sum > product (explicit or implicit) > unary > power > atom."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.abs_depth = 0
        self.inexact = False  # a decimal literal was seen: the answer is an approximation

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ParseError(f"expected {expected or 'a token'} at {self.pos}, got {token}")
        self.pos += 1
        return token

    def parse(self) -> list[sympy.Expr]:
        """[expression] or [left side, right side] of an equation."""
        sides = [self.sum()]
        if self.peek() == "=":
            self.take()
            sides.append(self.sum())
        if self.peek() is not None:
            raise ParseError(f"unexpected {self.peek()}")
        return sides

    def sum(self) -> sympy.Expr:
        terms = [self.product()]
        while self.peek() in ("+", "-"):
            sign = self.take()
            term = self.product()
            terms.append(-term if sign == "-" else term)
        return sympy.Add(*terms)

    def product(self) -> sympy.Expr:
        result = self.unary()
        while True:
            token = self.peek()
            if token in _MULTIPLY:
                self.take()
                result = result * self.unary()
            elif token in _DIVIDE:
                self.take()
                result = result / self.unary()
            elif self.starts_atom(token):
                result = result * self.power()
            else:
                return result

    def unary(self) -> sympy.Expr:
        if self.peek() in ("+", "-"):
            sign = self.take()
            operand = self.unary()
            return -operand if sign == "-" else operand
        return self.power()

    def starts_atom(self, token: str | None) -> bool:
        if token is None:
            return False
        if token == "|":
            return self.abs_depth == 0
        if token.startswith("\\"):
            name = token[1:]
            return (name in _CONSTANTS or name in _FUNCTIONS or name in _GREEK or token in _CLOSING
                    or name in ("frac", "binom"))
        return token[0].isalnum() or token[0] == "." or token in _CLOSING

    def power(self) -> sympy.Expr:
        base = self.atom()
        while self.peek() in ("^", "!", "_"):
            token = self.take()
            if token == "!":
                base = sympy.factorial(base)
            elif token == "^":
                base = base ** self.script()
            else:
                raise ParseError("subscript on a non-symbol")
        return base

    def script(self) -> sympy.Expr:
        """A superscript: a braced group, or a single digit, symbol or command (`x^23` is x^2 * 3)."""
        token = self.peek()
        if token == "-":
            self.take()
            return -self.script()
        if token is not None and token[0].isdigit() and len(token) > 1:
            self.tokens[self.pos] = token[1:]
            return sympy.Integer(token[0])
        return self.atom()

    def group(self) -> sympy.Expr:
        self.take("{")
        inner = self.sum()
        self.take("}")
        return inner

    def atom(self) -> sympy.Expr:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            return self.number(token)
        if token.isalpha():
            return self.symbol(token)
        if token in _CLOSING:
            inner = self.sum()
            self.take(_CLOSING[token])
            return {"\\lfloor": sympy.floor, "\\lceil": sympy.ceiling}.get(token, lambda x: x)(inner)
        if token == "|":
            self.abs_depth += 1
            inner = self.sum()
            self.abs_depth -= 1
            self.take("|")
            return sympy.Abs(inner)
        if token.startswith("\\"):
            return self.command(token[1:])
        raise ParseError(f"unexpected {token}")

    def number(self, token: str) -> sympy.Expr:
        if "." in token or "e" in token:
            self.inexact = True
        if re.search(r"e[+-]?\d{4,}", token):
            raise ParseError("exponent too large")
        return sympy.Rational(Fraction(token))

    def symbol(self, name: str) -> sympy.Expr:
        if self.peek() == "_":
            self.take()
            subscript = self.take()
            if subscript == "{":
                parts = []
                while self.peek() not in ("}", None):
                    parts.append(self.take())
                self.take("}")
                subscript = "".join(parts)
            return sympy.Symbol(f"{name}_{subscript}")
        return _CONSTANTS[name] if name in _CONSTANTS else sympy.Symbol(name)

    def command(self, name: str) -> sympy.Expr:
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in _GREEK:
            return self.symbol(name)
        if name == "frac":
            numerator = self.group()
            return numerator / self.group()
        if name == "binom":
            top = self.group()
            return sympy.binomial(top, self.group())
        if name == "sqrt" and self.peek() == "[":
            self.take()
            index = self.sum()
            self.take("]")
            return sympy.root(self.group(), index)
        if name == "sqrt":
            return sympy.sqrt(self.group() if self.peek() == "{" else self.power())
        if name in _FUNCTIONS:
            return self.function(_FUNCTIONS[name], name)
        raise ParseError(f"unknown command \\{name}")

    def function(self, function: Callable[[sympy.Expr], sympy.Expr], name: str) -> sympy.Expr:
        base = None
        if name == "log" and self.peek() == "_":
            self.take()
            base = self.script()
        exponent = None
        if self.peek() == "^":
            self.take()
            exponent = self.script()
        argument = self.power()
        # `\sin 2x` is sin(2x), `\sin x \cos x` is sin(x) cos(x)
        while self.starts_atom(self.peek()) and self.peek()[1:] not in _FUNCTIONS:
            argument = argument * self.power()
        value = function(argument) if base is None else sympy.log(argument, base)
        return value if exponent is None else value ** exponent


def parse_latex(text: str) -> tuple[list[sympy.Expr], bool]:
    """The sides of a normalized answer (one, or two for an equation) and whether it has decimals."""
    parser = _Parser(text)
    return parser.parse(), parser.inexact


def symbolic_equal(answer: str, reference: str) -> bool:
    """Whether two normalized single answers (no tuples or lists) are mathematically equal."""
    try:
        (sides_a, inexact_a), (sides_b, inexact_b) = parse_latex(answer), parse_latex(reference)
    except (ParseError, ValueError, TypeError, ZeroDivisionError):
        return False
    if len(sides_a) != len(sides_b):
        return False
    if len(sides_a) == 2:
        return _equations_equal(sides_a, sides_b)
    a, b = sides_a[0], sides_b[0]
    if a == b:
        return True
    if (inexact_a or inexact_b) and not (a.free_symbols or b.free_symbols):
        return _close(a, b)
    return _is_zero(a - b)


def _equations_equal(sides_a: list[sympy.Expr], sides_b: list[sympy.Expr]) -> bool:
    """Equal when `lhs - rhs` of one is a nonzero constant multiple of the other's."""
    da, db = sides_a[0] - sides_a[1], sides_b[0] - sides_b[1]
    if _is_zero(da - db):
        return True
    if db == 0:
        return False
    ratio = sympy.simplify(da / db)
    return not ratio.free_symbols and ratio.is_zero is False and ratio.is_finite is True


def _is_zero(difference: sympy.Expr) -> bool:
    if difference == 0:
        return True
    if difference.has(sympy.nan, sympy.zoo):
        return False
    if sympy.simplify(difference) == 0:
        return True
    if difference.free_symbols:
        return False
    # Constants simplify cannot settle (nested radicals): zero to 50 digits is zero.
    value = sympy.N(difference, 50)
    return value.is_number and abs(complex(value)) < 1e-40


def _close(a: sympy.Expr, b: sympy.Expr) -> bool:
    try:
        va, vb = complex(sympy.N(a, 30)), complex(sympy.N(b, 30))
    except (TypeError, ValueError):
        return False
    return abs(va - vb) <= REL_TOL * max(abs(va), abs(vb))


def _limit_memory() -> None:
    try:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT_BYTES, _MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):
        pass  # not on this platform, or a lower hard limit already applies


def _exit_with_parent() -> None:
    """Exit when the parent dies, even in the middle of a long computation."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def serve() -> None:
    """Answer `[answer, reference]` lines with `true`/`false` lines until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which then closes our stdin
    _limit_memory()
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        try:
            answer, reference = json.loads(line)
            result = symbolic_equal(answer, reference)
        except Exception:  # noqa: BLE001 - any failure of sympy on odd input means "not shown equal"
            result = False
        print(json.dumps(bool(result)), flush=True)


if __name__ == "__main__":
    serve()
