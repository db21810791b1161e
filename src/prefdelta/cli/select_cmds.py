"""``prefdelta select`` subcommands: list the selections, make one by hand.

``select make`` adds (or, with ``--replace``, replaces) one selection in the
``selections`` table. The train stage names selections by strategy, so the table keeps
at most one selection per strategy; re-running the select stage rewrites the table from
the config (a hand-made selection is then gone, by design).
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer

from prefdelta.cli.common import WorkspaceOpt
from prefdelta.errors import UserError
from prefdelta.workspace import Workspace

STRATEGIES = ("top", "bottom", "random", "all", "quadrant")


def make_selection(
    pairs: pd.DataFrame,
    strategy: str,
    key: str,
    fraction: float | None,
    k: int | None,
    seed: int,
    stratify: bool,
    quadrants: list[str] | None,
) -> pd.DataFrame:
    """One selection of ``strategy`` (see :mod:`prefdelta.select` for the rules)."""
    from prefdelta import select

    if strategy in ("top", "bottom"):
        return select.select_top(
            pairs, key, fraction, bottom=strategy == "bottom", k=k, stratify=stratify, quadrants=quadrants
        )
    if strategy == "random":
        return select.select_random(
            pairs, fraction, seed, key=key, k=k, stratify=stratify, quadrants=quadrants
        )
    if strategy == "all":
        return select.select_all(pairs, quadrants)
    if strategy == "quadrant":
        if not quadrants:
            raise UserError("strategy 'quadrant' needs at least one --quadrant (CC, CW, WC or WW)")
        return select.select_quadrant(pairs, quadrants)
    raise UserError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")


def merge_selection(existing: pd.DataFrame | None, new: pd.DataFrame, replace: bool) -> pd.DataFrame:
    """``existing`` with ``new`` added; a second selection of the same strategy needs ``replace``."""
    if existing is None or existing.empty:
        return new
    strategy = new["strategy"].iloc[0]
    same = existing["strategy"] == strategy
    if same.any() and not replace:
        have = existing.loc[same, "selection_id"].iloc[0]
        raise UserError(
            f"the selections table already has a {strategy!r} selection ({have}); the train stage names "
            "selections by strategy, so pass --replace to replace it"
        )
    return pd.concat([existing[~same], new], ignore_index=True)


def register(app: typer.Typer) -> None:
    @app.command("list")
    def list_cmd(workspace: WorkspaceOpt = None) -> None:
        """The selections: id, strategy, size, mean deltas of their pairs."""
        ws = Workspace(workspace)
        sels = ws.read_table("selections", required_by="select list")
        pairs = ws.read_table("pairs", required_by="select list").set_index("pair_id")
        for sid, g in sels.groupby("selection_id", sort=False):
            sub = pairs.reindex(g["pair_id"])
            typer.echo(
                f"{sid}\t{g['strategy'].iloc[0]}\t{len(g)} pairs\t"
                f"mean Δ aggregate {sub['delta_aggregate'].mean():+.3f}\t"
                f"mean generator gap {sub['generator_gap'].mean():+.3f}\t"
                f"{sub['problem_id'].nunique()} problems"
            )

    @app.command("make")
    def make_cmd(
        workspace: WorkspaceOpt = None,
        strategy: Annotated[str, typer.Option(help="top, bottom, random, all or quadrant")] = "top",
        key: Annotated[
            str, typer.Option(help="a dimension, outcome, aggregate or generator_gap")
        ] = "step_coherence",
        fraction: Annotated[float | None, typer.Option(help="share of the pool (default 0.3)")] = None,
        k: Annotated[int | None, typer.Option(help="exactly k pairs instead of a fraction")] = None,
        seed: Annotated[int, typer.Option(help="seed of a random selection")] = 0,
        stratify: Annotated[bool, typer.Option(help="round-robin over problems")] = False,
        quadrant: Annotated[list[str] | None, typer.Option(help="restrict the pool to this quadrant")] = None,
        replace: Annotated[bool, typer.Option(help="replace a selection of the same strategy")] = False,
    ) -> None:
        """Make one selection and record it in the selections table."""
        ws = Workspace(workspace)
        pairs = ws.read_table("pairs", required_by="select make")
        if fraction is None and k is None:
            fraction = 0.3
        new = make_selection(pairs, strategy, key, fraction, k, seed, stratify, quadrant or None)
        existing = ws.read_table("selections") if ws.has_table("selections") else None
        ws.write_table("selections", merge_selection(existing, new, replace))
        ws.invalidate("select")
        typer.echo(f"selection {new['selection_id'].iloc[0]}: {len(new)} pairs")
