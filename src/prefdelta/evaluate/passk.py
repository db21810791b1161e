"""pass@k by the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language
Models Trained on Code", eq. 1).

With ``n`` samples of which ``c`` pass, pass@k = 1 - C(n-c, k) / C(n, k): the chance
that at least one of ``k`` samples drawn without replacement from the ``n`` passes.
Drawing exactly ``k`` samples and counting is unbiased too but far noisier; the
estimator uses every sample. ``k`` must not exceed ``n`` (typical: n = 1 for greedy
pass@1, n = 10–200 for pass@10/100 at temperature 0.6–0.8).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prefdelta.errors import UserError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with ``c`` of ``n`` samples passing.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, the numerically stable form of the
    binomial ratio (the binomials overflow for n in the hundreds).
    """
    if not 0 <= c <= n:
        raise UserError(f"pass@k needs 0 <= c <= n; got c={c}, n={n}")
    if not 1 <= k <= n:
        raise UserError(f"pass@{k} needs at least {k} samples per problem; got n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_per_problem(passed: Sequence[Sequence[bool]], k: int) -> list[float]:
    """pass@k of each problem from its samples' pass/fail (problems may differ in n)."""
    return [pass_at_k(len(p), int(sum(p)), k) for p in passed]
