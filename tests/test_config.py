"""Specs: the shipped templates validate; a malformed one names the field; overrides and
``${VAR}`` expansion; nothing a user sets is dropped on the way to the run-time objects."""

from __future__ import annotations

from importlib import resources

import pytest

from prefdelta.errors import UserError
from prefdelta.study.spec import StudyConfig, builtin_templates, load_spec


def demo_text() -> str:
    return resources.files("prefdelta").joinpath("data/studies/arith-world.yaml").read_text()


SEEDS = "  seeds: [0, 1, 2]\n"


def variant(text: str) -> tuple[str, str]:
    return SEEDS, SEEDS + f"  variants: {{{text}}}\n"


def test_demo_template_is_valid():
    cfg = load_spec(template="demo")
    assert cfg.is_zoo(cfg.student.model) and cfg.student.model not in [g.id for g in cfg.generators]
    assert {s.domain for s in (e.resolve() for e in cfg.eval.suites)} == {"in", "out"}
    assert len(cfg.train.seeds) >= 3 and cfg.select.ladders and cfg.select.grids
    assert {"demo", "arith-world", "generator-ladder", "sample-grid", "outcome-vs-process"} <= set(
        builtin_templates()
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("  lr: 0.0003\n", "  lr: -1\n"), r"field 'train\.lr'.*greater than 0.*got -1"),
        (("{id: llama-s2000, family: llama, hidden: 48", "{id: llama-s2000, family: llama, hiden: 48"),
         r"field 'zoo\.models\.0\.hiden'.*not permitted"),
        (("[llama-s500, llama-s1000", "[llama-s9, llama-s1000"), r"generators\.0.*not a zoo model"),
        (("key: step_coherence", "key: vibes"), r"unknown key 'vibes'"),
        (("fraction: 0.3", "fraction: 3"), r"field 'select\.fraction'"),
        (variant("kto: {algorithm: kto, beta: -1}"), r"'train\.variants\.kto\.beta'"),
        (variant("kto: {algorithm: kto, betta: 1}"), r"cannot override betta"),
        (variant("kto: {seeds: [1]}"), r"cannot override seeds"),
        (variant("dpo: {beta: 1}"), r"'train\.variants\.dpo'.*taken"),
        (variant("kto: {algorithm: kto, batch_size: 1}"), r"variants\.kto\.batch_size'.*KTO"),
        ((SEEDS, "  seeds: [1, 1]\n"), r"field 'train\.seeds': each seed once"),
        (("{source: arith, split: pairs", "{source: arithm, split: pairs"), r"problems\.0.*unknown problem source 'arithm'"),
        (("judge: {kind: oracle}", "judge: {kind: oracel}"), r"judge\.judges\.0\.kind"),
        (("source: arith, n: 500, seed: 3, spec: {max_steps: 3, high: 9},", "source: nope, n: 500, seed: 3,"),
         r"eval\.suites\.0.*unknown problem source"),
        (("student: {model: student}", "student: {model: llama-s2000}"), r"student\.model.*also a generator"),
    ],
)  # fmt: skip
def test_malformed_spec_names_the_field(tmp_path, edit, message):
    text = demo_text()
    old, new = edit
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(UserError, match=message) as err:
        load_spec(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_spec_extends_a_template_and_overrides_sections(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: sample-grid\nname: mine\ntrain: {seeds: [4, 5, 6]}\n")
    cfg = load_spec(path)
    assert cfg.name == "mine" and cfg.train.seeds == [4, 5, 6]
    assert cfg.train.beta == 2.0 and cfg.select.grids[0].name == "grid"  # the rest from the templates
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(UserError, match="a cycle"):
        load_spec(tmp_path / "loop.yaml")


def test_oracle_judge_on_real_problems_is_refused():
    with pytest.raises(UserError, match=r"judge\.judges\.0\.kind.*only in the arith world"):
        load_spec(template="demo", overrides=["problems=[{source: gsm8k, split: train, n: 5}]"])


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nzoo: [\n  - id: a\n")
    with pytest.raises(UserError, match=r"broken\.yaml: line \d+, column \d+: not valid YAML"):
        load_spec(path)


def test_missing_and_non_utf8_spec_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin\.yaml: not UTF-8"):
        load_spec(latin)


def test_variants_resolve_over_the_base_run():
    cfg = load_spec(template="generator-ladder")
    sets = cfg.train.hyper_sets()
    assert list(sets) == [cfg.train.algorithm, *cfg.train.variants]
    kto = sets["kto"]
    assert kto.algorithm == "kto"
    # fields a variant does not name are the base run's
    assert (kto.lr, kto.epochs, kto.nll_weight) == (cfg.train.lr, cfg.train.epochs, cfg.train.nll_weight)


def test_set_overrides_apply_before_validation():
    cfg = load_spec(None, ["train.seeds=[0, 1]", "eval.suites.0.n=50", "train.variants={}"])
    assert cfg.train.seeds == [0, 1]
    assert cfg.eval.suites[0].n == 50
    assert cfg.train.variants == {}
    assert load_spec().train.seeds == [0, 1, 2]  # the shipped template itself is untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.seedz=1", r"with --set train\.seedz=1: field 'train\.seedz'.*not permitted"),
        ("train.lr=abc", r"field 'train\.lr'.*valid number"),
        ("trainlr", r"expected KEY=VALUE"),
        ("eval.suites.7.n=1", r"eval\.suites\.7 needs an index below 4"),
        ("name.x=1", r"name is a value, not a section"),
    ],
)
def test_bad_set_override_names_it(override, message):
    with pytest.raises(UserError, match=message):
        load_spec(None, [override])


def test_env_variables_expand_and_an_unset_one_names_the_field(tmp_path, monkeypatch):
    path = tmp_path / "s.yaml"
    path.write_text("name: ${STUDY_NAME:-fallback}\nstudent: {model: '${STUDENT_DIR}'}\n")
    monkeypatch.setenv("STUDENT_DIR", "/models/x")
    cfg = load_spec(path)
    assert (cfg.name, cfg.student.model) == ("fallback", "/models/x")
    monkeypatch.delenv("STUDENT_DIR")
    with pytest.raises(UserError, match=r"field 'student\.model'.*STUDENT_DIR is not set"):
        load_spec(path)


def test_every_spec_field_has_a_description():
    """Every field of every section says what it is for (the issue's rule for users)."""
    from pydantic import BaseModel

    missing: list[str] = []
    seen: set[type] = set()

    def walk(model: type[BaseModel], where: str) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{where}.{name}")
            for arg in _models_in(field.annotation):
                walk(arg, f"{where}.{name}")

    walk(StudyConfig, "spec")
    assert not missing, missing


def _models_in(annotation) -> list[type]:
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]
