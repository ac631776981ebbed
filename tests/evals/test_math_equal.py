"""Normalization and equivalence of math answers."""

import threading

import pytest

from evals.graders import grade_gsm8k, grade_math, math_equal, normalize_math_answer


@pytest.mark.parametrize(("text", "expected"), [
    (r"$\dfrac12$", r"\frac{1}{2}"),
    (r"\tfrac 3 4", r"\frac{3}{4}"),
    (r"\sqrt2", r"\sqrt{2}"),
    (r"\left( 1, \frac{\pi}{2} \right)", r"(1,\frac{\pi}{2})"),
    (r"10^\circ", "10"),
    (r"10^{\circ}", "10"),
    (r"5.4 \text{ cents}", "5.4"),
    (r"15\mbox{ cm}^2", "15"),
    (r"\text{Evelyn}", "Evelyn"),
    (r"\textbf{(C)}", "C"),
    (r"\$32,\!348", "32348"),
    ("1,000,000", "1000000"),
    ("(1,234)", "(1,234)"),
    ("x = 3", "3"),
    (r"x \in [-2,7]", "[-2,7]"),
    ("5x - 7y + 11z + 4 = 0", "5x-7y+11z+4=0"),
    (".5", "0.5"),
    ("0.50", "0.5"),
    ("025", "25"),
    ("12.", "12"),
    (r"50\%", "50"),
    (r"\cot x", r"\cot x"),
])
def test_normalize_math_answer(text, expected):
    assert normalize_math_answer(text) == expected


EQUAL = [
    ("0.5", r"\frac{1}{2}"), ("1/2", r"\frac{1}{2}"), (r"\dfrac12", r"\frac{1}{2}"), (r"\tfrac{1}{2}", "0.5"),
    (".5", "1/2"), (r"50\%", "50"), (r"2\sqrt{3}", r"\sqrt{12}"), (r"\frac{\pi}{2}", r"\pi/2"), ("(1,2)", "(1, 2)"),
    ("x = 3", "3"), (r"10^\circ", "10"), (r"\text{(B)}", "B"), ("(B)", r"\textbf{(B)}"), ("1,000", "1000"),
    ("3.0", "3"), ("025", "25"), (r"137 \frac{1}{2}", "137.5"), ("0.3333333", r"\frac{1}{3}"),
    (r"3\pi", r"\pi \cdot 3"), (r"2 \times 3", "6"), (r"\frac{\sqrt{3}}{3}", r"\frac{1}{\sqrt{3}}"),
    (r"\sqrt[3]{8}", "2"), ("x^2 + 2x + 1", "(x+1)^2"), ("6 - 5i", "-5i+6"), (r"\text{Evelyn}", "evelyn"),
    (r"\{1, 2\}", r"\{2, 1\}"), ("3, 5, 7", "7, 5, 3"), (r"1 \pm \sqrt{19}", r"1-\sqrt{19}, 1+\sqrt{19}"),
    (r"[0, 1)", r"\left[ 0, 1 \right)"), (r"(-\infty, 0) \cup (1, \infty)", r"(1,\infty)\cup(-\infty,0)"),
    (r"\begin{pmatrix} 1/2 \\ 3 \end{pmatrix}", r"\begin{bmatrix} 0.5 \\ 3 \end{bmatrix}"),
    ("y = 2x + 3", "2x+3"), ("5x - 7y + 11z + 4 = 0", "-10x + 14y - 22z - 8 = 0"),
    (r"\$18.90", "18.9"), (r"4.5 \times 10^{33}", "4.5e33"), (r"\sqrt{2}", "1.41421356"),
]
UNEQUAL = [
    ("1/2", "1/3"), ("(1,2)", "(2,1)"), (r"\sqrt{2}", "1.41"), ("x^2", "x^3"), (r"50\%", "0.5"),
    (r"50\%", r"\frac{1}{2}"), ("(1,2)", "[1,2]"), ("(1,2)", "1,2"), ("[0,1)", "[0,1]"), ("1,2", "1,2,3"),
    ("10000001", "10000000"), ("east", "seat"), (r"\text{(B)}", "C"), ("x+1", "x-1"), ("52_8", "52"),
    ("5x - 7y + 11z + 4 = 0", "5x - 7y + 11z - 4 = 0"), ("", "0"), ("1.5", "2.5"), (r"2\pi", "6.28"),
]


@pytest.mark.parametrize(("answer", "reference"), EQUAL)
def test_equivalent_forms_are_equal(answer, reference):
    assert math_equal(answer, reference)
    assert math_equal(reference, answer)


@pytest.mark.parametrize(("answer", "reference"), UNEQUAL)
def test_different_answers_are_unequal(answer, reference):
    assert not math_equal(answer, reference)
    assert not math_equal(reference, answer)


def test_missing_answer_is_wrong():
    assert not math_equal(None, "1")
    assert not grade_math("I do not know.", "5")


def test_graders_from_responses():
    assert grade_math(r"Thus $x = \boxed{\dfrac{\sqrt3}{2}}$.", r"\frac{\sqrt{3}}{2}")
    assert grade_math("The answer is $(3, \\frac{\\pi}{2})$.", r"\left( 3, \frac{\pi}{2} \right)")
    assert grade_gsm8k("She has 18 dollars left.\n#### 18",
                       "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs.\n#### 18")
    assert grade_gsm8k("The answer is $1,234.", "1234")
    assert not grade_gsm8k(r"\boxed{19}", "#### 18")


def test_concurrent_callers_share_the_worker():
    pairs = [(r"2\sqrt{3}", r"\sqrt{12}", True), ("x^2", "x^3", False)] * 4
    results = [None] * len(pairs)

    def grade(i):
        results[i] = math_equal(pairs[i][0], pairs[i][1])

    threads = [threading.Thread(target=grade, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected for _, _, expected in pairs]
