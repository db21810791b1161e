"""Selection: which pairs to train on.

A selection is a named, reproducible subset of the pairs table, recorded in the
``selections`` table (selection_id, strategy, key, fraction, seed, pair_id). The
reference finding: the top ~30% of pairs by step-coherence delta match training on all
pairs and beat a random 30% (DESIGN.md).

Ties in top-k are broken by ``pair_id`` ascending, so top-k is exact and deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from prefdelta.errors import UserError
from prefdelta.hashing import stable_hash
from prefdelta.judge.dimensions import DIMENSIONS


def key_column(pairs: pd.DataFrame, key: str) -> str:
    """The pairs column a selection key refers to (``step_coherence`` → ``delta_step_coherence``)."""
    col = key if key == "generator_gap" else f"delta_{key}"
    if col not in pairs.columns:
        raise UserError(
            f"unknown selection key {key!r}; expected one of {', '.join(DIMENSIONS)}, aggregate, generator_gap"
        )
    return col


def size_of(n_pairs: int, fraction: float) -> int:
    """Number of pairs a fraction keeps: ``ceil(fraction * n)``, at least 1."""
    if not 0 < fraction <= 1:
        raise UserError(f"selection fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(fraction * n_pairs - 1e-9))


def _record(ids: pd.Series, strategy: str, key: str, fraction: float, seed: int) -> pd.DataFrame:
    if len(ids) == 0:
        raise UserError(
            f"selection '{strategy}' by {key} came out empty; refusing to write an empty training set"
        )
    selection_id = (
        f"{strategy}-{key}-{fraction:g}-s{seed}" if strategy == "random" else f"{strategy}-{key}-{fraction:g}"
    )
    return pd.DataFrame(
        {
            "selection_id": selection_id,
            "strategy": strategy,
            "key": key,
            "fraction": fraction,
            "seed": seed,
            "pair_id": ids.to_numpy(),
            "rank": np.arange(len(ids)),
        }
    )


def select_top(pairs: pd.DataFrame, key: str, fraction: float, bottom: bool = False) -> pd.DataFrame:
    """The ``fraction`` of pairs with the largest (``bottom``: smallest) ``key``; ties by pair_id."""
    if pairs.empty:
        raise UserError("the pairs table is empty: nothing to select from")
    col = key_column(pairs, key)
    k = size_of(len(pairs), fraction)
    values = pairs[col].to_numpy(dtype=float)
    values = np.where(np.isnan(values), -np.inf if not bottom else np.inf, values)
    order = np.lexsort((pairs["pair_id"].to_numpy(), values if bottom else -values))
    return _record(
        pairs["pair_id"].iloc[order[:k]].reset_index(drop=True),
        "bottom" if bottom else "top",
        key,
        fraction,
        0,
    )


def select_random(pairs: pd.DataFrame, fraction: float, seed: int, key: str = "random") -> pd.DataFrame:
    """A seeded random subset of the same size as a top-``fraction`` selection."""
    if pairs.empty:
        raise UserError("the pairs table is empty: nothing to select from")
    k = size_of(len(pairs), fraction)
    ids = pairs["pair_id"].sort_values().reset_index(drop=True)
    rng = np.random.default_rng(int(stable_hash("random", seed, length=8), 16))
    take = rng.choice(len(ids), size=k, replace=False)
    return _record(ids.iloc[np.sort(take)].reset_index(drop=True), "random", key, fraction, seed)


def select_all(pairs: pd.DataFrame) -> pd.DataFrame:
    """Every pair: the baseline the selections are compared with."""
    if pairs.empty:
        raise UserError("the pairs table is empty: nothing to select from")
    return _record(pairs["pair_id"].sort_values().reset_index(drop=True), "all", "all", 1.0, 0)
