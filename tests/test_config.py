"""Specs: the shipped templates validate; a malformed one names the field; overrides and
``${VAR}`` expansion; nothing a user sets is dropped on the way to the run-time objects."""

from __future__ import annotations

from importlib import resources

import pytest

from prefdelta.errors import UserError
from prefdelta.study.spec import StudyConfig, builtin_templates, load_spec


def demo_text() -> str:
    return resources.files("prefdelta").joinpath("data/studies/demo.yaml").read_text()


def test_demo_template_is_valid():
    cfg = load_spec(template="demo")
    assert cfg.is_zoo(cfg.student.model)
    assert {s.domain for s in (e.resolve() for e in cfg.eval.suites)} == {"in", "out"}
    assert "demo" in builtin_templates()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("lr: 0.0001", "lr: -1"), r"field 'train\.lr'.*greater than 0.*got -1"),
        (("      hidden: 64\n", "      hiden: 64\n"), r"field 'zoo\.models\.0\.hiden'.*not permitted"),
        (
            ("[llama-h64-s1500, llama-h64-s1100", "[llama-h64-s9, llama-h64-s1100"),
            r"generators\.0.*not a zoo model",
        ),
        (("key: step_coherence", "key: vibes"), r"unknown key 'vibes'"),
        (("fraction: 0.3", "fraction: 3"), r"field 'select\.fraction'"),
        (
            ("kto: {algorithm: kto, beta: 2.0}", "kto: {algorithm: kto, beta: -1}"),
            r"'train\.variants\.kto\.beta'",
        ),
        (("kto: {algorithm: kto, beta: 2.0}", "kto: {algorithm: kto, betta: 1}"), r"cannot override betta"),
        (("kto: {algorithm: kto, beta: 2.0}", "kto: {seeds: [1]}"), r"cannot override seeds"),
        (("kto: {algorithm: kto, beta: 2.0}", "dpo: {beta: 1}"), r"'train\.variants\.dpo'.*taken"),
        (
            ("kto: {algorithm: kto, beta: 2.0}", "kto: {algorithm: kto, batch_size: 1}"),
            r"variants\.kto\.batch_size'.*KTO",
        ),
        (("seeds: [0]", "seeds: [1, 1]"), r"field 'train\.seeds': each seed once"),
        (
            ("{source: arith, split: pairs", "{source: arithm, split: pairs"),
            r"problems\.0.*unknown problem source 'arithm'",
        ),
        (("judge: {kind: oracle}", "judge: {kind: oracel}"), r"judge\.judges\.0\.kind"),
        (
            ("source: arith, n: 200, seed: 3,", "source: nope, n: 200, seed: 3,"),
            r"eval\.suites\.0.*unknown problem source",
        ),
    ],
)
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
    cfg = load_spec(template="demo")
    sets = cfg.train.hyper_sets()
    assert list(sets) == [cfg.train.algorithm, *cfg.train.variants]
    kto = sets["kto"]
    assert kto.algorithm == "kto"
    # fields a variant does not name are the base run's
    assert (kto.lr, kto.epochs, kto.nll_weight) == (cfg.train.lr, cfg.train.epochs, cfg.train.nll_weight)


def test_set_overrides_apply_before_validation():
    cfg = load_spec(None, ["train.seeds=[0, 1, 2]", "eval.suites.0.n=50", "train.variants={}"])
    assert cfg.train.seeds == [0, 1, 2]
    assert cfg.eval.suites[0].n == 50
    assert cfg.train.variants == {}
    assert load_spec().train.seeds == [0]  # the shipped template itself is untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.seedz=1", r"with --set train\.seedz=1: field 'train\.seedz'.*not permitted"),
        ("train.lr=abc", r"field 'train\.lr'.*valid number"),
        ("trainlr", r"expected KEY=VALUE"),
        ("eval.suites.7.n=1", r"eval\.suites\.7 needs an index below 2"),
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
