"""Configs: the embedded study validates; a malformed one names the field."""

from __future__ import annotations

import pytest

from prefdelta.errors import UserError
from prefdelta.study.spec import load_config


def test_embedded_demo_config_is_valid():
    cfg = load_config()
    assert cfg.train.student in {z.id for z in cfg.zoo} | {s for z in cfg.zoo for s in z.snapshots}
    assert {s.domain for s in cfg.eval.suites} == {"in", "out"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("lr: 0.0001", "lr: -1"), r"field 'train\.lr'.*greater than 0.*got -1"),
        (("    hidden: 64\n", "    hiden: 64\n"), r"field 'zoo\.0\.hiden'.*not permitted"),
        (("student: llama-h64-s1100", "student: nobody"), r"train\.student names 'nobody'"),
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
    ],
)
def test_malformed_config_names_the_field(tmp_path, edit, message):
    from importlib import resources

    text = resources.files("prefdelta").joinpath("data/configs/demo.yaml").read_text()
    old, new = edit
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(UserError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nzoo: [\n  - id: a\n")
    with pytest.raises(UserError, match=r"broken\.yaml: line \d+, column \d+ is not valid YAML"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_variants_resolve_over_the_base_run():
    cfg = load_config()
    sets = cfg.train.hyper_sets()
    assert list(sets) == [cfg.train.algorithm, *cfg.train.variants]
    kto = sets["kto"]
    assert kto.algorithm == "kto"
    # fields a variant does not name are the base run's
    assert (kto.lr, kto.epochs, kto.nll_weight) == (cfg.train.lr, cfg.train.epochs, cfg.train.nll_weight)


def test_set_overrides_apply_before_validation(tmp_path):
    cfg = load_config(None, ["train.seeds=[0, 1, 2]", "eval.suites.0.problems.n=50", "train.variants={}"])
    assert cfg.train.seeds == [0, 1, 2]
    assert cfg.eval.suites[0].problems.n == 50
    assert cfg.train.variants == {}
    assert load_config().train.seeds == [0]  # the embedded config itself is untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.seedz=1", r"with --set train\.seedz=1: field 'train\.seedz'.*not permitted"),
        ("train.lr=abc", r"field 'train\.lr'.*valid number"),
        ("trainlr", r"expected KEY=VALUE"),
        ("eval.suites.7.problems.n=1", r"eval\.suites\.7 needs an index below 2"),
        ("name.x=1", r"name is a value, not a section"),
    ],
)
def test_bad_set_override_names_it(override, message):
    with pytest.raises(UserError, match=message):
        load_config(None, [override])
