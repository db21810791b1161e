"""The offline arithmetic world: seeded word problems with a hidden computation graph.

Why it exists: real preference studies need GPUs and model weights. This world lets the
*whole* study run on a CPU in minutes, with exact ground truth for every trace, so that
LLM judges can be audited against an oracle (see :mod:`prefdelta.judge.oracle`).

A problem is a chain of operations on a running quantity. Each operation combines the
previous result with one given quantity::

    Ann has 7 apples. She buys 5 more. She gives away 3. How many apples does Ann have now?

A reference trace, in GSM8K calculator-annotation style, one step a line::

    7+5=<<7+5=12>>12
    12-3=<<12-3=9>>9
    #### 9

Knobs (:class:`ArithSpec`): number of steps, range of given numbers, operations,
phrasing templates (``"base"`` or ``"alt"``), and distractor sentences (irrelevant
quantities). The ``alt`` templates and distractors exist to build out-of-domain suites
that share the vocabulary but shift the phrasing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

OpKind = Literal["add", "sub", "mul"]
ALL_OPS: tuple[OpKind, ...] = ("add", "sub", "mul")
SYMBOL: dict[str, str] = {"add": "+", "sub": "-", "mul": "*"}

NAMES = ["Ann", "Ben", "Cara", "Dan", "Eve", "Finn", "Gia", "Hugo", "Ivy", "Jon", "Kim", "Leo"]
PRONOUN = {
    "Ann": "She",
    "Ben": "He",
    "Cara": "She",
    "Dan": "He",
    "Eve": "She",
    "Finn": "He",
    "Gia": "She",
    "Hugo": "He",
    "Ivy": "She",
    "Jon": "He",
    "Kim": "She",
    "Leo": "He",
}
OBJECTS = ["apples", "coins", "books", "marbles", "stamps", "shells", "cards", "pens"]

# Problem sentences per template family; {p} pronoun, {n} number. Several verbs per op
# so that a model must read the verb, not memorise a position.
PROBLEM_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "base": {
        "add": ["{p} buys {n} more.", "{p} finds {n} more.", "{p} gets {n} more."],
        "sub": ["{p} gives away {n}.", "{p} loses {n}.", "{p} sells {n}."],
        "mul": ["{p} makes the pile {n} times as big.", "{p} gets {n} times as many."],
    },
    "alt": {
        "add": ["Then {n} more are added.", "A friend gives {p2} {n} more."],
        "sub": ["Then {n} are taken away.", "{p} drops {n} of them."],
        "mul": ["Then the amount grows {n} times.", "The pile becomes {n} times as big."],
    },
}
# Trace step phrases, the same for every template family: a trace names the operation.
# Kept to the calculator annotation itself: every token costs CPU time in the zoo.
STEP_TEMPLATE = "{expr}=<<{expr}={r}>>{r}"
DISTRACTOR_TEMPLATES = ["{q} has {n} {o2}.", "{q} is {n} years old."]
OBJ_PRONOUN = {"She": "her", "He": "him"}


class ArithSpec(BaseModel):
    """Knobs of a problem distribution.

    Typical values: ``steps`` 2–4 in-domain (tiny models fail at 5+), ``low``/``high``
    1–20, ``mul_max`` 3, ``max_value`` 99 keeps every intermediate at two digits.
    """

    model_config = ConfigDict(extra="forbid")

    min_steps: int = Field(2, ge=1, le=12, description="fewest operations in a problem")
    max_steps: int = Field(4, ge=1, le=12, description="most operations in a problem")
    low: int = Field(1, ge=0, description="smallest given number (start and add/sub operands)")
    high: int = Field(20, ge=1, description="largest given number")
    mul_max: int = Field(3, ge=2, le=9, description="largest multiplier")
    max_value: int = Field(99, ge=1, description="every intermediate stays in [0, max_value]")
    ops: list[OpKind] = Field(default_factory=lambda: list(ALL_OPS))
    templates: Literal["base", "alt", "mixed"] = Field("base", description="word phrasing family")
    distractors: int = Field(0, ge=0, le=3, description="irrelevant sentences (code: unused variables)")
    rendering: Literal["word", "code", "stem"] = Field(
        "word", description="word problem (in-domain), Python program or science problem (worlds/render.py)"
    )
    repeat: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="chance an operation repeats the previous one (a loop in code); default 0.25 for code, else 0",
    )

    @field_validator("ops")
    @classmethod
    def _non_empty(cls, v: list[OpKind]) -> list[OpKind]:
        if not v:
            raise ValueError("ops must name at least one of add, sub, mul")
        return v

    def model_post_init(self, __context: object) -> None:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) must be <= max_steps ({self.max_steps})")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.high > self.max_value:
            raise ValueError(f"high ({self.high}) must be <= max_value ({self.max_value})")


@dataclass(frozen=True)
class Op:
    """One node of the computation graph: ``result = left <kind> operand``.

    ``left`` is the index of the input node: -1 for the starting quantity, otherwise
    the index of an earlier op. ``operand`` is a given quantity.
    """

    kind: OpKind
    left: int
    operand: int
    result: int


@dataclass(frozen=True)
class ArithProblem:
    """A problem with its hidden computation graph."""

    problem_id: str
    name: str
    obj: str
    start: int
    ops: tuple[Op, ...]
    text: str
    distractor_numbers: tuple[int, ...] = field(default=())
    rendering: str = "word"
    step_prefixes: tuple[str, ...] = field(default=())

    @property
    def answer(self) -> int:
        return self.ops[-1].result if self.ops else self.start

    @property
    def givens(self) -> tuple[int, ...]:
        """The numbers the problem states that the computation uses."""
        return (self.start, *(op.operand for op in self.ops))

    @property
    def pronoun(self) -> str:
        return PRONOUN[self.name]

    def input_value(self, op_index: int) -> int:
        left = self.ops[op_index].left
        return self.start if left < 0 else self.ops[left].result

    def to_meta(self) -> dict[str, object]:
        """A JSON-able description of the graph, stored in the problems table."""
        return {
            "world": "arith",
            "name": self.name,
            "obj": self.obj,
            "start": self.start,
            "ops": [[o.kind, o.left, o.operand, o.result] for o in self.ops],
            "distractor_numbers": list(self.distractor_numbers),
            "steps": len(self.ops),
            "rendering": self.rendering,
            "step_prefixes": list(self.step_prefixes),
        }

    @classmethod
    def from_meta(cls, problem_id: str, text: str, meta: dict[str, object]) -> ArithProblem:
        ops = tuple(Op(k, int(lf), int(n), int(r)) for k, lf, n, r in meta["ops"])  # type: ignore[union-attr]
        return cls(
            problem_id=problem_id,
            name=str(meta["name"]),
            obj=str(meta["obj"]),
            start=int(meta["start"]),  # type: ignore[arg-type]
            ops=ops,
            text=text,
            distractor_numbers=tuple(int(x) for x in meta.get("distractor_numbers", [])),  # type: ignore[union-attr]
            rendering=str(meta.get("rendering", "word")),
            step_prefixes=tuple(str(x) for x in meta.get("step_prefixes", [])),  # type: ignore[union-attr]
        )


def _apply(kind: OpKind, a: int, b: int) -> int:
    if kind == "add":
        return a + b
    if kind == "sub":
        return a - b
    return a * b


def _choose_op(rng: random.Random, spec: ArithSpec, value: int) -> tuple[OpKind, int] | None:
    """Pick an operation and operand keeping the result inside [0, max_value]."""
    kinds = list(spec.ops)
    rng.shuffle(kinds)
    for kind in kinds:
        if kind == "add":
            hi = min(spec.high, spec.max_value - value)
            if hi >= spec.low:
                return kind, rng.randint(spec.low, hi)
        elif kind == "sub":
            hi = min(spec.high, value)
            if hi >= max(spec.low, 1):
                return kind, rng.randint(max(spec.low, 1), hi)
        else:
            hi = min(spec.mul_max, spec.max_value // max(value, 1))
            if hi >= 2 and value > 0:
                return kind, rng.randint(2, hi)
    return None


def make_problem(rng: random.Random, spec: ArithSpec, problem_id: str) -> ArithProblem:
    """Draw one problem from ``spec`` using ``rng`` (deterministic for a seeded rng)."""
    while True:
        name = rng.choice(NAMES)
        obj = rng.choice(OBJECTS)
        start = rng.randint(max(spec.low, 1), spec.high)
        n_steps = rng.randint(spec.min_steps, spec.max_steps)
        ops: list[Op] = []
        value = start
        repeat = spec.repeat if spec.repeat is not None else (0.25 if spec.rendering == "code" else 0.0)
        for i in range(n_steps):
            choice = _choose_op(rng, spec, value)
            if repeat and ops and rng.random() < repeat:
                again = (ops[-1].kind, ops[-1].operand)
                if 0 <= _apply(again[0], value, again[1]) <= spec.max_value:
                    choice = again
            if choice is None:
                break
            kind, operand = choice
            value = _apply(kind, value, operand)
            ops.append(Op(kind, i - 1, operand, value))
        if len(ops) == n_steps:
            break
    if spec.rendering != "word":
        from prefdelta.worlds.render import RENDERERS, GraphView

        view = GraphView(name, PRONOUN[name], obj, start, tuple((o.kind, o.operand) for o in ops))
        r = RENDERERS[spec.rendering](rng, view, spec.distractors, spec.low, spec.high)
        return ArithProblem(
            problem_id=problem_id,
            name=name,
            obj=obj,
            start=start,
            ops=tuple(ops),
            text=r.text,
            distractor_numbers=r.distractor_numbers,
            rendering=spec.rendering,
            step_prefixes=r.step_prefixes,
        )
    pron = PRONOUN[name]
    family = spec.templates if spec.templates != "mixed" else rng.choice(["base", "alt"])
    sentences = [f"{name} has {start} {obj}."]
    for op in ops:
        tmpl = rng.choice(PROBLEM_TEMPLATES[family][op.kind])
        sentences.append(tmpl.format(p=pron, p2=OBJ_PRONOUN[pron], n=op.operand))
    distractor_numbers: list[int] = []
    for _ in range(spec.distractors):
        other = rng.choice([n for n in NAMES if n != name])
        number = rng.randint(max(spec.low, 1), spec.high)
        others = [o for o in OBJECTS if o != obj]
        sentence = rng.choice(DISTRACTOR_TEMPLATES).format(q=other, n=number, o2=rng.choice(others))
        sentences.insert(rng.randint(1, len(sentences)), sentence)
        distractor_numbers.append(number)
    sentences.append(f"How many {obj} does {name} have now?")
    return ArithProblem(
        problem_id=problem_id,
        name=name,
        obj=obj,
        start=start,
        ops=tuple(ops),
        text=" ".join(sentences),
        distractor_numbers=tuple(distractor_numbers),
    )


def make_problems(spec: ArithSpec, n: int, seed: int, prefix: str = "arith") -> list[ArithProblem]:
    """``n`` problems from ``spec``; the same (spec, n, seed) always gives the same list.

    Problem ids are ``{prefix}-{seed}-{index}`` so that they are stable across runs.
    """
    rng = random.Random(f"{prefix}:{seed}")
    return [make_problem(rng, spec, f"{prefix}-{seed}-{i:06d}") for i in range(n)]


def step_line(kind: OpKind, a: int, b: int, result: int | None = None) -> str:
    """One trace line; ``result`` overrides the true result (to build arithmetic slips)."""
    r = _apply(kind, a, b) if result is None else result
    expr = f"{a}{SYMBOL[kind]}{b}"
    return STEP_TEMPLATE.format(expr=expr, r=r)


def reference_trace(problem: ArithProblem) -> str:
    """The correct trace: one annotated line per operation (after the rendering's prefix,
    e.g. ``apples = `` in code), then ``#### answer``."""
    lines = []
    value = problem.start
    prefixes = problem.step_prefixes or ("",) * len(problem.ops)
    for op, prefix in zip(problem.ops, prefixes, strict=True):
        lines.append(prefix + step_line(op.kind, value, op.operand))
        value = op.result
    lines.append(f"#### {value}")
    return "\n".join(lines)


def prompt_text(problem_text: str) -> str:
    """The prompt a generator sees: the problem, then a newline where the trace begins."""
    return f"{problem_text}\n"
