"""Selection: which pairs to train on.

A selection is a named, reproducible subset of the pairs table, recorded in the
``selections`` table (selection_id, strategy, key, fraction, k, seed, stratified,
quadrants, pair_id, rank). The reference finding: the top ~30% of pairs by
step-coherence delta match training on all pairs and beat a random 30% (DESIGN.md).

Rules, so that a selection is exact and reproducible:

- **Pool**: the pairs in the requested correctness quadrants whose key has a value (a
  pair with a NaN delta is never ranked, never drawn).
- **Size**: ``k`` when given, else ``ceil(fraction × pool size)`` (at least 1).
- **Top / bottom**: ordered by the key's value, descending (bottom: ascending); ties
  broken by ``pair_id`` ascending — so top-k is exact and does not depend on row order.
- **Random**: a uniform draw without replacement from the pool, seeded; the same seed
  gives the same pairs, different seeds give different subsets.
- **Stratified**: round-robin over problems — every problem's first pair (in the order
  above) before any problem's second — so no problem dominates a selection.

An empty selection is an error, never an empty training set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from prefdelta.errors import UserError
from prefdelta.hashing import stable_hash
from prefdelta.pairs.config import QUADRANTS, SELECT_KEYS
from prefdelta.select.config import GridConfig, LadderConfig, SelectConfig


def key_column(pairs: pd.DataFrame, key: str) -> str:
    """The pairs column a selection key refers to (``step_coherence`` → ``delta_step_coherence``)."""
    if key not in SELECT_KEYS:
        raise UserError(f"unknown selection key {key!r}; expected one of {', '.join(SELECT_KEYS)}")
    col = key if key == "generator_gap" else f"delta_{key}"
    if col not in pairs.columns:
        raise UserError(f"selection key {key!r} needs column '{col}', which the pairs table lacks")
    return col


def size_of(n_pairs: int, fraction: float) -> int:
    """Number of pairs a fraction keeps: ``ceil(fraction * n)``, at least 1."""
    if not 0 < fraction <= 1:
        raise UserError(f"selection fraction must be in (0, 1], got {fraction}")
    return max(1, math.ceil(fraction * n_pairs - 1e-9))


def _pool(pairs: pd.DataFrame, key: str | None, quadrants: Sequence[str] | None) -> pd.DataFrame:
    if pairs.empty:
        raise UserError("the pairs table is empty: nothing to select from")
    pool = pairs
    if quadrants is not None and set(quadrants) != set(QUADRANTS):
        bad = [q for q in quadrants if q not in QUADRANTS]
        if bad:
            raise UserError(f"unknown quadrant {bad[0]!r}; expected one of {', '.join(QUADRANTS)}")
        if "quadrant" not in pairs.columns:
            raise UserError("the pairs table has no 'quadrant' column; rebuild pairs")
        pool = pool[pool["quadrant"].isin(list(quadrants))]
    if key is not None:
        col = key_column(pairs, key)
        pool = pool[pool[col].notna()]
    if pool.empty:
        where = f" in quadrants {','.join(quadrants)}" if quadrants is not None else ""
        has = f" with a value for {key!r}" if key is not None else ""
        raise UserError(
            f"no pair{where}{has} among {len(pairs)} pairs: the selection would be empty; "
            "refusing to write an empty training set"
        )
    return pool.reset_index(drop=True)


def _size(n: int, fraction: float | None, k: int | None) -> int:
    if k is not None:
        if k < 1:
            raise UserError(f"selection k must be at least 1, got {k}")
        return min(k, n)
    return size_of(n, 1.0 if fraction is None else fraction)


def _round_robin(order: np.ndarray, problem_ids: np.ndarray) -> np.ndarray:
    """Reorder ``order`` so every problem's i-th pair comes before any problem's (i+1)-th."""
    rank_in_problem = pd.Series(problem_ids[order]).groupby(problem_ids[order], sort=False).cumcount()
    return order[np.argsort(rank_in_problem.to_numpy(), kind="stable")]


def _selection_id(
    strategy: str,
    key: str,
    fraction: float | None,
    k: int | None,
    seed: int,
    stratify: bool,
    quadrants: Sequence[str] | None,
) -> str:
    size = f"k{k}" if k is not None else f"{1.0 if fraction is None else fraction:g}"
    parts = [strategy, key, size]
    if stratify:
        parts.append("strat")
    if quadrants is not None and set(quadrants) != set(QUADRANTS):
        parts.append("q" + "".join(sorted(quadrants)))
    if strategy == "random":
        parts.append(f"s{seed}")
    return "-".join(parts)


def _record(
    ids: np.ndarray,
    strategy: str,
    key: str,
    fraction: float | None,
    k: int | None,
    seed: int,
    stratify: bool = False,
    quadrants: Sequence[str] | None = None,
    selection_id: str | None = None,
) -> pd.DataFrame:
    if len(ids) == 0:
        raise UserError(
            f"selection '{strategy}' by {key} came out empty; refusing to write an empty training set"
        )
    quads = ",".join(quadrants) if quadrants is not None else ",".join(QUADRANTS)
    return pd.DataFrame(
        {
            "selection_id": selection_id
            or _selection_id(strategy, key, fraction, k, seed, stratify, quadrants),
            "strategy": strategy,
            "key": key,
            "fraction": float("nan") if fraction is None else float(fraction),
            "k": len(ids),
            "seed": seed,
            "stratified": stratify,
            "quadrants": quads,
            "pair_id": np.asarray(ids),
            "rank": np.arange(len(ids)),
        }
    )


def select_top(
    pairs: pd.DataFrame,
    key: str,
    fraction: float | None = None,
    bottom: bool = False,
    *,
    k: int | None = None,
    stratify: bool = False,
    quadrants: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The ``k`` (or ``fraction``) pairs with the largest (``bottom``: smallest) ``key``.

    Ties are broken by ``pair_id`` ascending; ``stratify`` takes problems round-robin.
    """
    pool = _pool(pairs, key, quadrants)
    n = _size(len(pool), fraction, k)
    values = pool[key_column(pool, key)].to_numpy(dtype=float)
    order = np.lexsort((pool["pair_id"].to_numpy(dtype=str), values if bottom else -values))
    if stratify:
        order = _round_robin(order, pool["problem_id"].to_numpy(dtype=object))
    return _record(
        pool["pair_id"].to_numpy()[order[:n]],
        "bottom" if bottom else "top",
        key,
        fraction,
        k,
        0,
        stratify,
        quadrants,
    )


def select_random(
    pairs: pd.DataFrame,
    fraction: float | None = None,
    seed: int = 0,
    key: str = "random",
    *,
    k: int | None = None,
    stratify: bool = False,
    quadrants: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A seeded uniform draw of the same size as a top selection with the same arguments.

    ``key`` only names the selection and restricts the pool to pairs with a value for it
    (when it is a selection key), so the control is drawn from the same pool as the top.
    """
    pool = _pool(pairs, key if key in SELECT_KEYS else None, quadrants)
    n = _size(len(pool), fraction, k)
    ids = pool["pair_id"].to_numpy(dtype=str)
    by_id = np.argsort(ids, kind="stable")
    rng = np.random.default_rng(int(stable_hash("random", seed, length=8), 16))
    order = by_id[rng.permutation(len(ids))]
    if stratify:
        order = _round_robin(order, pool["problem_id"].to_numpy(dtype=object))
    return _record(np.sort(ids[order[:n]]), "random", key, fraction, k, seed, stratify, quadrants)


def select_all(pairs: pd.DataFrame, quadrants: Sequence[str] | None = None) -> pd.DataFrame:
    """Every pair (in the quadrants): the baseline the selections are compared with."""
    pool = _pool(pairs, None, quadrants)
    return _record(np.sort(pool["pair_id"].to_numpy(dtype=str)), "all", "all", 1.0, None, 0, False, quadrants)


def select_quadrant(pairs: pd.DataFrame, quadrants: Sequence[str]) -> pd.DataFrame:
    """Every pair in the given correctness quadrants (the reference study's ablation)."""
    pool = _pool(pairs, None, quadrants)
    return _record(
        np.sort(pool["pair_id"].to_numpy(dtype=str)), "quadrant", "all", 1.0, None, 0, False, quadrants
    )


GEN_PREFIX = "gen:"
"""Strategy prefix of the per-generator-pair selections (``gen:<chosen>><rejected>``)."""


def select_by_generator_pair(
    pairs: pd.DataFrame, seed: int = 0, *, k: int | None = None, quadrants: Sequence[str] | None = None
) -> pd.DataFrame:
    """One selection per (chosen, rejected) generator pair, all of the same size.

    The generator-level ablation: training on each lets a study read the gain as a
    function of the capability gap with the amount of data held fixed. The size is the
    smallest group's (or ``k`` when smaller); each group is drawn with its own seeded
    permutation, ties in ``pair_id`` order as for ``random``.
    """
    pool = _pool(pairs, "generator_gap", quadrants)
    groups = list(pool.groupby(["chosen_generator", "rejected_generator"], sort=True))
    n = min(len(g) for _, g in groups)
    if k is not None:
        n = _size(n, None, k)
    parts = []
    for (a, b), g in groups:
        ids = np.sort(g["pair_id"].to_numpy(dtype=str))
        rng = np.random.default_rng(int(stable_hash("gen", seed, a, b, length=8), 16))
        rec = _record(
            np.sort(ids[rng.permutation(len(ids))[:n]]),
            f"{GEN_PREFIX}{a}>{b}",
            "generator_gap",
            None,
            n,
            seed,
            False,
            quadrants,
            selection_id=f"gen-{a}-over-{b}-k{n}-s{seed}",  # no '>' or ':' in run folder names
        )
        parts.append(rec)
    return pd.concat(parts, ignore_index=True)


def matches(strategy: str, name: str) -> bool:
    """Whether a selection's ``strategy`` is one ``train.selections`` names: the strategy
    itself, a prefix at a ``:`` (``ladder`` names every ladder cell, ``grid:sample`` every
    cell of the grid named sample), or a design's name (``mirror`` for ``ladder:mirror:…``);
    ``gen`` names every per-generator-pair selection."""
    parts = strategy.split(":")
    return (
        strategy == name
        or strategy.startswith(name + ":")
        or (parts[0] in ("ladder", "grid") and len(parts) > 1 and parts[1] == name)  # a design by its name
        or (name == "gen" and strategy.startswith(GEN_PREFIX))
    )


def _relabel(sel: pd.DataFrame, strategy: str, selection_id: str) -> pd.DataFrame:
    return sel.assign(strategy=strategy, selection_id=selection_id)


def generator_pool(pairs: pd.DataFrame, chosen: str, rejected: str) -> pd.DataFrame:
    """The pairs of one (chosen, rejected) generator pair."""
    pool = pairs[(pairs["chosen_generator"] == chosen) & (pairs["rejected_generator"] == rejected)]
    if pool.empty:
        have = sorted(set(zip(pairs["chosen_generator"], pairs["rejected_generator"], strict=True)))
        raise UserError(
            f"no pairs with chosen {chosen!r} and rejected {rejected!r} "
            f"(generator pairs with pairs: {', '.join(f'{a}>{b}' for a, b in have[:12])})"
        )
    return pool


def widest_pair(pairs: pd.DataFrame) -> tuple[str, str]:
    """The (chosen, rejected) generator pair with the largest capability gap (ties: most pairs)."""
    cross = pairs[pairs["chosen_generator"] != pairs["rejected_generator"]]
    if cross.empty:
        raise UserError(
            "no cross-generator pairs: a grid needs a generator pair (give grids.chosen/rejected)"
        )
    g = cross.groupby(["chosen_generator", "rejected_generator"]).agg(
        gap=("generator_gap", "mean"), n=("pair_id", "size")
    )
    best = g.sort_values(["gap", "n"], ascending=False).index[0]
    return str(best[0]), str(best[1])


def ladder_pools(pairs: pd.DataFrame, cfg: LadderConfig) -> list[tuple[str, str, pd.DataFrame]]:
    """(chosen, rejected, pool of pairs) of every rung of a :class:`LadderConfig`, in rung order."""
    side, other = (
        ("rejected_generator", "chosen_generator")
        if cfg.fixed == "rejected"
        else (
            "chosen_generator",
            "rejected_generator",
        )
    )
    mine = pairs[pairs[side] == cfg.generator]
    gaps = mine[mine[other] != cfg.generator].groupby(other)["generator_gap"].mean()
    rungs = list(cfg.rungs) or list(gaps.sort_values(kind="stable").index)  # nearest rung first
    if cfg.equal:
        rungs = [cfg.generator, *[r for r in rungs if r != cfg.generator]]
    pools = []
    for r in rungs:
        a, b = (r, cfg.generator) if cfg.fixed == "rejected" else (cfg.generator, r)
        pools.append((a, b, generator_pool(pairs, a, b)))
    return pools


def select_ladder(pairs: pd.DataFrame, cfg: LadderConfig, size: int | None = None) -> pd.DataFrame:
    """One equal-size selection per rung of a :class:`LadderConfig` (see its docstring).

    ``size``: pairs per rung shared with other ladders (at most this ladder's smallest pool).
    A rung's draw depends only on its generator pair, the seed and the size, so the same
    generator pair on two ladders of one size is the same selection."""
    pools = ladder_pools(pairs, cfg)
    n = min(len(p) for _, _, p in pools)
    if size is not None:
        n = min(n, size)
    if cfg.k is not None:
        n = min(n, cfg.k)
    parts = []
    for a, b, pool in pools:
        ids = np.sort(pool["pair_id"].to_numpy(dtype=str))
        rng = np.random.default_rng(int(stable_hash("ladder", cfg.seed, a, b, length=8), 16))
        sel = _record(
            np.sort(ids[rng.permutation(len(ids))[:n]]), "ladder", "generator_gap", None, n, cfg.seed
        )
        parts.append(_relabel(sel, f"ladder:{cfg.name}:{a}>{b}", f"{cfg.name}-{a}-over-{b}-k{n}-s{cfg.seed}"))
    return pd.concat(parts, ignore_index=True)


def select_grid(pairs: pd.DataFrame, cfg: GridConfig) -> pd.DataFrame:
    """Every cell of a :class:`GridConfig` inside its generator pair (see its docstring)."""
    if (cfg.chosen is None) != (cfg.rejected is None):
        raise UserError(
            f"select.grids ({cfg.name}): give both chosen and rejected, or neither (the widest gap)"
        )
    chosen, rejected = (cfg.chosen, cfg.rejected) if cfg.chosen else widest_pair(pairs)
    pool = generator_pool(pairs, chosen, rejected)  # type: ignore[arg-type]
    parts = []
    for key in cfg.keys:
        for fraction in cfg.fractions:
            for strategy in cfg.strategies:
                if strategy == "random":
                    sel = select_random(pool, fraction, cfg.seed, key=key)
                else:
                    sel = select_top(pool, key, fraction, bottom=strategy == "bottom")
                tag = f"{strategy}:{key}:{fraction:g}"
                parts.append(_relabel(sel, f"grid:{cfg.name}:{tag}", f"{cfg.name}-{tag.replace(':', '-')}"))
    if cfg.all:
        parts.append(_relabel(select_all(pool), f"grid:{cfg.name}:all", f"{cfg.name}-all"))
    for quads in cfg.quadrants:
        q = "+".join(quads)
        sel = select_quadrant(pool, quads)
        parts.append(
            _relabel(sel, f"grid:{cfg.name}:quadrant:{q}", f"{cfg.name}-quadrant-{q.replace('+', '')}")
        )
    out = pd.concat(parts, ignore_index=True)
    return out.assign(chosen_generator=chosen, rejected_generator=rejected)


def selections_for(pairs: pd.DataFrame, cfg: SelectConfig) -> pd.DataFrame:
    """The selections a :class:`SelectConfig` asks for: top, random, all (and bottom, and
    one per generator pair).

    One selection per strategy, so the train stage can name them by strategy.
    """
    quads = None if set(cfg.quadrants) == set(QUADRANTS) else list(cfg.quadrants)
    common = {"k": cfg.k, "stratify": cfg.stratify, "quadrants": quads}
    parts = []
    if cfg.basic:
        parts.append(select_top(pairs, cfg.key, cfg.fraction, **common))
        if cfg.bottom:
            parts.append(select_top(pairs, cfg.key, cfg.fraction, bottom=True, **common))
        parts.append(select_random(pairs, cfg.fraction, cfg.seed, key=cfg.key, **common))
        parts.append(select_all(pairs, quads))
        if cfg.by_generator_pair:
            parts.append(select_by_generator_pair(pairs, cfg.seed, k=cfg.k, quadrants=quads))
    shared = None
    if cfg.ladders_share_size and cfg.ladders:
        shared = min(len(p) for ladder in cfg.ladders for _, _, p in ladder_pools(pairs, ladder))
    parts += [select_ladder(pairs, ladder, shared) for ladder in cfg.ladders]
    parts += [select_grid(pairs, grid) for grid in cfg.grids]
    if not parts:
        raise UserError("select: nothing to select (select.basic is false and no ladders or grids are given)")
    return pd.concat(parts, ignore_index=True)
