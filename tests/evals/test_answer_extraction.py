"""Extracting final answers from responses and gold fields."""

import pytest

from evals.graders import extract_boxed, extract_final_answer, extract_gsm8k_answer


@pytest.mark.parametrize(("text", "expected"), [
    (r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
    (r"\boxed{\left\{ x : x^{2} \in \{1, 2\} \right\}}", r"\left\{ x : x^{2} \in \{1, 2\} \right\}"),
    (r"first \boxed{1}, then \boxed{2}", "2"),
    (r"$\boxed 5$", "5"),
    (r"\fbox{7} is it", "7"),
    (r"\boxed{3} and a truncated \boxed{4", "3"),  # the last well-formed box
    (r"\boxedx{3}", None),
    (r"\boxed{ }", None),
    ("no answer here", None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("She pays 5 + 7 = <<5+7=12>>12.\n#### 12", "12"),
    ("#### 1,234", "1234"),
    ("#### -3.5\n", "-3.5"),
    ("#### 1\nsome text\n#### 2", "2"),
    ("#### none", None),
    ("12", None),
])
def test_extract_gsm8k_answer(text, expected):
    assert extract_gsm8k_answer(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    (r"The answer is 3, so #### 4 and $\boxed{5}$", "5"),
    ("The answer is 3.\n#### 4", "4"),
    ("So the answer is $\\frac{3}{4}$.", r"\frac{3}{4}"),
    ("The answer is 12.5. Done.", "12.5"),
    ("**Final Answer:** 42", "42"),
    ("I think the answer is: B", "B"),
    ("She has 3 apples, then 1,250 pears left", "1250"),
    ("I am not sure.", None),
    ("", None),
])
def test_extract_final_answer_order(text, expected):
    assert extract_final_answer(text) == expected
