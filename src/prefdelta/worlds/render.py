"""Renderings of one hidden computation graph: a word problem, a Python program, a science problem.

The arith world draws a graph (a start value and a chain of add / sub / mul operations)
and renders it as text. The same graph, rendered three ways, gives an in-domain suite
(word problems, what preference pairs are built on) and out-of-domain ones:

- ``word`` — today's story problem (``Ann has 7 apples. She buys 5 more. …``);
- ``code`` — a short program whose printed value must be predicted (CRUXEval-style
  output prediction), with augmented assignments, a helper function and ``for`` loops over
  repeated operations; its trace steps through the program, one statement a line
  (``apples = 7+5=<<7+5=12>>12``);
- ``stem`` — a science-style problem with quantities and units (volumes, energy, cells,
  distance), rates over time and unit conversions (``1 liter is 2 cups``), solved in the
  same calculator-annotation steps.

The oracle judges every rendering the same way, from the graph: the givens are the
start and the operands whatever words or syntax carry them, and distractors (an
irrelevant sentence, an unused variable) are never givens. A rendering only decides the
problem text and the prefix of a trace line; the graph, the answer and the five
dimensions are shared. Each renderer is deterministic in the ``rng`` it is given.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

SYMBOL = {"add": "+", "sub": "-", "mul": "*"}
PYTHON_NAMES = {
    "apples": "apples",
    "coins": "coins",
    "books": "books",
    "marbles": "marbles",
    "stamps": "stamps",
    "shells": "shells",
    "cards": "cards",
    "pens": "pens",
}
UNUSED = ["total", "count", "limit", "width", "offset", "size"]


@dataclass(frozen=True)
class Rendered:
    """A rendering of a graph: the problem text, the trace-line prefix of each step, and
    the numbers its distractors mention."""

    text: str
    step_prefixes: tuple[str, ...]
    distractor_numbers: tuple[int, ...] = ()


@dataclass(frozen=True)
class GraphView:
    """What a renderer needs of a problem's graph (kept free of the world module's types)."""

    name: str
    pronoun: str
    obj: str
    start: int
    ops: tuple[tuple[str, int], ...]  # (kind, operand) in order


Renderer = Callable[[random.Random, GraphView, int, int, int], Rendered]
"""(rng, graph, distractors, low, high) -> Rendered."""


# ---- code ----------------------------------------------------------------------------------------
def render_code(rng: random.Random, g: GraphView, distractors: int, low: int, high: int) -> Rendered:
    """A program: ``x = start``, one statement per operation (``x += 5``, ``x = x - 3``, a
    helper ``def scale(v, k)`` for some multiplications, ``for _ in range(k)`` over a run of
    equal operations), unused assignments as distractors, then ``print(x)``."""
    var = PYTHON_NAMES[g.obj]
    body: list[str] = [f"{var} = {g.start}"]
    prefixes: list[str] = []
    helper = False
    i = 0
    while i < len(g.ops):
        kind, n = g.ops[i]
        run = 1
        while i + run < len(g.ops) and g.ops[i + run] == (kind, n):
            run += 1
        style = rng.random()
        if kind == "mul" and style < 0.3:
            helper = True
            stmt = f"{var} = scale({var}, {n})"
        elif style < 0.65:
            stmt = f"{var} {SYMBOL[kind]}= {n}"
        else:
            stmt = f"{var} = {var} {SYMBOL[kind]} {n}"
        if run > 1:
            body += [f"for _ in range({run}):", f"    {stmt}"]
        else:
            body.append(stmt)
        prefixes += [f"{var} = "] * run
        i += run
    numbers: list[int] = []
    for _ in range(distractors):
        number = rng.randint(max(low, 1), high)
        body.insert(rng.randint(0, len(body)), f"{rng.choice(UNUSED)} = {number}")
        numbers.append(number)
    lines = (["def scale(v, k):", "    return v * k", ""] if helper else []) + body + [f"print({var})"]
    text = "What does this program print?\n```python\n" + "\n".join(lines) + "\n```"
    return Rendered(text, tuple(prefixes), tuple(numbers))


# ---- stem ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Domain:
    """A science setting: the quantity, a ladder of units (each conversion moves one rung
    down), and phrasings per operation; ``{n}`` the operand, ``{u}`` the current unit,
    ``{v}`` the next unit."""

    start: str
    add: tuple[str, ...]
    sub: tuple[str, ...]
    rate: str  # mul as a rate over time
    units: tuple[str, ...]
    question: str
    distractor: str


DOMAINS: tuple[Domain, ...] = (
    Domain(
        "A tank holds {n} {u} of water.",
        ("A pipe adds {n} {u}.", "Rain adds {n} {u} more."),
        ("{n} {u} leak out.", "A valve drains {n} {u}."),
        "Water flows in at that amount each hour for {n} hours, so the total becomes {n} times as large.",
        ("liters", "cups", "spoons", "drops"),
        "How many {u} of water are in the tank now?",
        "The room is {n} degrees warm.",
    ),
    Domain(
        "A battery stores {n} {u} of energy.",
        ("A solar panel adds {n} {u}.", "A charger adds {n} {u}."),
        ("A motor uses {n} {u}.", "A lamp uses {n} {u}."),
        "The charge rate is kept for {n} hours, so the stored energy becomes {n} times as large.",
        ("kilojoules", "units", "ticks", "sparks"),
        "How many {u} of energy does the battery store now?",
        "The battery weighs {n} grams.",
    ),
    Domain(
        "A dish holds {n} {u}.",
        ("{n} more {u} are added.", "A sample brings {n} {u}."),
        ("{n} {u} die.", "{n} {u} are removed."),
        "Each of them divides into {n}, so the count becomes {n} times as large.",
        ("cells", "cells", "cells", "cells"),
        "How many {u} are in the dish now?",
        "The dish is {n} centimeters wide.",
    ),
    Domain(
        "A rover has driven {n} {u}.",
        ("It drives {n} {u} more.", "It climbs {n} {u} further."),
        ("It backs up {n} {u}.", "It rolls back {n} {u}."),
        "It repeats that whole distance until it has covered {n} times as much.",
        ("meters", "steps", "hops", "marks"),
        "How many {u} has the rover driven now?",
        "The rover has {n} wheels.",
    ),
)


def render_stem(rng: random.Random, g: GraphView, distractors: int, low: int, high: int) -> Rendered:
    """A science problem: a start amount in a unit, additions and removals, growth over a
    rate (``… for 3 hours …``), or a unit conversion (``1 liter is 2 cups``) for a
    multiplication; the question asks in the current unit."""
    d = rng.choice(DOMAINS)
    rung = 0
    sentences = [d.start.format(n=g.start, u=d.units[0])]
    for kind, n in g.ops:
        u = d.units[rung]
        if kind == "add":
            sentences.append(rng.choice(d.add).format(n=n, u=u))
        elif kind == "sub":
            sentences.append(rng.choice(d.sub).format(n=n, u=u))
        elif rung + 1 < len(d.units) and d.units[rung + 1] != u and rng.random() < 0.5:
            rung += 1
            sentences.append(
                f"The amount is now measured in {d.units[rung]}: 1 {u[:-1]} is {n} {d.units[rung]}."
            )
        else:
            sentences.append(d.rate.format(n=n))
    numbers: list[int] = []
    for _ in range(distractors):
        number = rng.randint(max(low, 1), high)
        sentences.insert(rng.randint(1, len(sentences)), d.distractor.format(n=number))
        numbers.append(number)
    sentences.append(d.question.format(u=d.units[rung]))
    return Rendered(" ".join(sentences), ("",) * len(g.ops), tuple(numbers))


RENDERERS: dict[str, Renderer] = {"code": render_code, "stem": render_stem}
"""Renderings besides ``word`` (which lives in :mod:`prefdelta.worlds.arith`)."""


def trace_lines(prefixes: Sequence[str], steps: Sequence[str]) -> list[str]:
    """Trace lines: each step's annotation after its rendering's prefix."""
    return [p + s for p, s in zip(prefixes, steps, strict=True)]
