"""Rubric as data: shipped default, user extensions, validation, hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefdelta.errors import UserError
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.judge.rubric import load_rubric, render_prompt


def test_default_rubric_has_the_five_anchored_dimensions() -> None:
    r = load_rubric()
    assert r.names == DIMENSIONS
    assert all(sorted(d.anchors) == [1, 2, 3, 4, 5] for d in r.dimensions)
    schema = r.json_schema()
    assert schema["required"] == [*DIMENSIONS, "rationale"]
    assert schema["properties"]["factuality"] == {"type": "integer", "minimum": 1, "maximum": 5}
    assert r.hash == load_rubric("default").hash


def test_prompt_shows_problem_reference_and_anchors() -> None:
    text = render_prompt(load_rubric(), "What is 2+2?", "2+2=4\n#### 4", "4")
    assert (
        "What is 2+2?" in text
        and "Reference answer" in text
        and "5 = Every computation is exactly right." in text
    )
    assert "Reference answer" not in render_prompt(load_rubric(), "What is 2+2?", "#### 4")


def test_extend_add_replace_drop(tmp_path: Path) -> None:
    anchors = "{1: a, 2: b, 3: c, 4: d, 5: e}"
    f = tmp_path / "r.yaml"
    f.write_text(
        "extends: default\n"
        "drop: [signal_to_noise]\n"
        "dimensions:\n"
        f"  - {{name: units, question: 'Are units right?', anchors: {anchors}}}\n"
        f"  - {{name: factuality, question: 'Only the given facts?', anchors: {anchors}}}\n"
    )
    r = load_rubric(f)
    assert r.names == ("factuality", "strategy_coherence", "step_coherence", "numerical_precision", "units")
    assert r.dimensions[0].question == "Only the given facts?"
    assert r.hash != load_rubric().hash
    assert "units" in r.json_schema()["required"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("extends: default\ndrop: [nope]\n", "field 'drop': no dimension 'nope'"),
        (
            "extends: default\ndimensions:\n  - {name: x, question: q, anchors: {1: a}}\n",
            "dimension 'x' has anchors",
        ),
        ("extends: other\n", "field 'extends'"),
        ("name: r\ndimensions: []\nsystem: s\ntemplate: t\n", "field 'dimensions'"),
        ("extends: default\ntemplate: 'no placeholders'\n", "field 'template'"),
        ("a: [1,\n", "is not valid YAML"),
    ],
)
def test_bad_rubrics_name_the_field(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(UserError, match=message):
        load_rubric(f)


def test_missing_rubric_file() -> None:
    with pytest.raises(UserError, match=r"rubric file .* not found"):
        load_rubric("/nonexistent/rubric.yaml")
