"""The five reasoning-quality dimensions of the reference study (DESIGN.md).

Every judge (the arith oracle, the calculator-annotation checker, an LLM judge) scores
a trace on a 1–5 scale along these, plus outcome correctness. A share in [0, 1] maps
to a score by ``1 + 4 * share``.
"""

from __future__ import annotations

DIMENSIONS: tuple[str, ...] = (
    "factuality",
    "strategy_coherence",
    "step_coherence",
    "numerical_precision",
    "signal_to_noise",
)

DESCRIPTIONS: dict[str, str] = {
    "factuality": "uses the problem's given numbers, facts and constraints correctly",
    "strategy_coherence": "the overall approach is a sound plan for this problem",
    "step_coherence": "every step follows from the problem and the steps before it",
    "numerical_precision": "every computation is arithmetically right",
    "signal_to_noise": "nearly every line contributes to reaching the answer",
}


def share_to_score(share: float) -> float:
    """Map a share in [0, 1] to the 1–5 scale."""
    return 1.0 + 4.0 * min(max(share, 0.0), 1.0)


def check_dimensions(names: list[str] | tuple[str, ...], known: tuple[str, ...] = DIMENSIONS) -> None:
    """Raise a clear error for dimension names that do not exist."""
    from prefdelta.errors import UserError

    unknown = [n for n in names if n not in known and n != "aggregate"]
    if unknown:
        raise UserError(
            f"unknown dimension {unknown[0]!r}; expected one of {', '.join(known)} or 'aggregate'"
        )
