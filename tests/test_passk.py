"""pass@k: the unbiased estimator of Chen et al. 2021 against brute-force enumeration."""

from __future__ import annotations

import itertools
from math import comb

import pytest

from prefdelta.errors import UserError
from prefdelta.evaluate.passk import pass_at_k, pass_at_k_per_problem


def brute_force(n: int, c: int, k: int) -> float:
    """Share of all k-subsets of n samples (c passing) that contain a passing one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize(
    ("n", "c", "k"), [(1, 0, 1), (1, 1, 1), (5, 2, 1), (5, 2, 3), (8, 1, 4), (10, 3, 10), (7, 0, 3)]
)
def test_matches_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k))


def test_matches_binomial_formula_at_large_n():
    n, c, k = 200, 13, 100
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_1_is_the_pass_rate():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k_per_problem([[True, False], [False, False, False, True]], 1) == pytest.approx(
        [0.5, 0.25]
    )


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="pass@5 needs at least 5 samples"):
        pass_at_k(3, 1, 5)
    with pytest.raises(UserError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)
