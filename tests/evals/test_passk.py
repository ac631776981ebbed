"""pass@k against the unbiased estimator 1 - C(n-c, k) / C(n, k), on cases worked out by hand."""

from math import comb

import pytest

from evals.passk import default_ks, mean_pass_at_k, pass_at_k


@pytest.mark.parametrize("n,c,k,expected", [
    (1, 0, 1, 0.0),
    (1, 1, 1, 1.0),
    (10, 3, 1, 0.3),  # pass@1 is the fraction correct
    (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (6, 2, 3, 0.8),  # 1 - C(4,3)/C(6,3) = 1 - 4/20
    (4, 0, 4, 0.0),
    (4, 1, 4, 1.0),  # every draw of all four samples holds the correct one
    (5, 3, 3, 1.0),  # only two wrong samples: three draws always hit a correct one
])
def test_hand_computed_cases(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_equals_the_binomial_formula_everywhere_small():
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


def test_large_n_stays_finite_and_exact_enough():
    assert pass_at_k(1000, 10, 100) == pytest.approx(1 - comb(990, 100) / comb(1000, 100), rel=1e-9)


def test_mean_over_problems_and_bad_arguments():
    assert mean_pass_at_k([(5, 2), (4, 1)], 2) == pytest.approx((0.7 + 0.5) / 2)
    for bad in [(3, 4, 1), (3, 1, 4), (3, 1, 0), (3, -1, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)
    assert default_ks(1) == [1] and default_ks(4) == [1, 2, 4] and default_ks(10) == [1, 2, 4, 8, 10]
