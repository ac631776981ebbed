"""The grader never hangs: slow symbolic comparisons time out in the worker, which is replaced."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

import evals.graders
from evals.graders import math_equal


@pytest.mark.parametrize(("slow", "reference"), [
    ("9^{9^{9}}", "1"),  # sympy evaluates the integer power eagerly: over 30 s
    ("(x+1)^{3000}", "(x+2)^{3000}"),  # simplify of the difference: about 25 s
])
def test_slow_comparison_times_out_and_the_worker_recovers(slow, reference):
    start = time.monotonic()
    assert not math_equal(slow, reference, timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 5.0  # it did run into the timeout, and stopped there
    # A hung worker would make this time out too; a replaced one answers.
    assert math_equal(r"2\sqrt{3}", r"\sqrt{12}", timeout_s=10.0)


def test_parser_errors_are_unequal_not_raised():
    assert not math_equal(r"\frac{1}{", "1")
    assert not math_equal("((((((((((((((((((((((((((((((x", "x")
    assert not math_equal("(" * 5000 + "x" + ")" * 5000, "y")


def test_worker_imports_only_sympy_and_the_standard_library():
    worker = Path(evals.graders.__file__).with_name("latex_sympy.py")
    run = subprocess.run([sys.executable, "-X", "importtime", "-P", str(worker)], stdin=subprocess.DEVNULL, check=True,
                         capture_output=True, text=True, timeout=60)
    assert run.stdout == "ready\n"
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in run.stderr.splitlines()[1:]}
    assert "sympy" in imported
    assert not imported & {"torch", "numpy", "evals", "cookbook", "transformers"}
