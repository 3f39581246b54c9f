"""Session 32: the rule script for the teacher-confidence filter on the label-free training
(`scripts/label_free_rule_s32.py`, driven by `label_free_rule.py` since session 33) and the
diagnosis script's seed guard. No training here."""

import dataclasses
import filecmp
import shutil
from pathlib import Path

import lnpt.bench as bench
import pytest
import torch
from lnpt.training import TRAINING_DEFAULTS
from maskloop.report import PairedDifference

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def rule(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import label_free_rule as lfr

    return lfr


@pytest.fixture
def diag(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import label_free_diagnosis

    return label_free_diagnosis


def test_current_is_rule_s31s_configuration_and_the_candidate_differs_in_confidence_only(rule):
    import validation_at_test_sizes as s31

    cur = rule.config(rule.S32, "current", ("lnpt+label-free", "snip+supervised"), 19)
    cand = rule.config(rule.S32, "candidate", ("lnpt+label-free",), 19)
    ref = s31.config(("lnpt+label-free",))
    assert cur.bench.key_dict() == ref.bench.key_dict()  # rule s31's cache key
    a, b = cur.bench.key_dict(), cand.bench.key_dict()
    assert {k for k in a if a[k] != b[k]} == {"label_free"}
    assert a["label_free"] == TRAINING_DEFAULTS
    assert b["label_free"] == {**TRAINING_DEFAULTS, "confidence": 0.9}
    assert list(cand.seed_range) == [19] and cand.validation_split == "teacher-held-out"
    assert rule.S32.seeds == (19, 20, 21, 22, 23)  # fresh: 7-18 are used


@pytest.mark.parametrize("bad", ["candidates", "", None])
def test_config_refuses_an_unknown_configuration(rule, bad):
    with pytest.raises(ValueError, match="which must be"):
        rule.config(rule.S32, bad, ("lnpt+label-free",), 19)


def test_candidate_reaches_the_trainer(rule, monkeypatch):
    """`train_label_free` passes the candidate's `confidence` to `LabelFreeTrainer`."""
    seen = {}

    class Fake:
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)

        def fit(self, *args, **kwargs):
            return None

    monkeypatch.setattr(bench, "LabelFreeTrainer", Fake)
    cfg = rule.config(rule.S32, "candidate", ("lnpt+label-free",), 19).bench
    data = bench.MODELS["cnn"].data(19)
    bench.train_label_free(torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), data, 1, cfg, 19, None)
    assert seen["confidence"] == 0.9 and seen["feature_weight"] == 0.0
    assert seen["temperature"] == 4.0 and seen["targets"] == "soft"


def test_left_lists_every_unit_in_run_order(rule, tmp_path, monkeypatch):
    todo = rule.left(dataclasses.replace(rule.S32, run=tmp_path))
    assert len(todo) == 15
    assert todo[:3] == [
        (19, "current", "lnpt+label-free"),
        (19, "current", "snip+supervised"),
        (19, "candidate", "lnpt+label-free"),
    ]
    assert todo[-1] == (23, "candidate", "lnpt+label-free")


def _d(mean, low, high, n=5):
    return PairedDifference(mean, low, high, n)


def test_verdict_on_made_up_numbers(rule):
    v = rule.verdict_s32
    assert v(_d(0.01, 0.001, 0.02), _d(0.0, -0.004, 0.004)) == ("adopted", "met")
    assert v(_d(0.01, 0.0, 0.02), _d(0.0, -0.005, 0.004)) == ("rejected", "missed")  # bounds
    assert v(_d(0.01, 0.001, 0.02), _d(-0.01, -0.02, 0.0)) == ("adopted", "missed")
    assert v(_d(0.01, 0.001, 0.02, n=4), None)[0].startswith("partial")
    assert v(None, None)[0].startswith("partial")


def test_diagnosis_refuses_fresh_seeds(diag):
    with pytest.raises(SystemExit):
        diag.main(["teachers", "--seeds", "19"])


def test_the_shared_driver_rederives_rule_s32_byte_for_byte(rule, tmp_path, monkeypatch):
    """`label_free_rule.py` (session 33) writes rule s32's committed JSON and result.md again,
    byte for byte, from the committed caches."""
    repo = Path(__file__).resolve().parents[3]
    root = repo / "docs/benchmarks"
    shutil.copytree(root / "lnpt_s32_rule", tmp_path / "lnpt_s32_rule")
    (tmp_path / "lnpt_s32_rule" / "result.md").unlink()
    monkeypatch.setattr(rule, "ROOT", tmp_path)
    study = dataclasses.replace(rule.S32, run=tmp_path / "lnpt_s32_rule")
    rule.rule(study)
    assert filecmp.cmp(tmp_path / "lnpt_s32_rule.json", root / "lnpt_s32_rule.json", shallow=False)
    assert filecmp.cmp(
        tmp_path / "lnpt_s32_rule" / "result.md", root / "lnpt_s32_rule/result.md", shallow=False
    )


def test_the_s32_wrapper_keeps_its_command(monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[3])  # the committed caches' paths
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import label_free_rule_s32

    assert label_free_rule_s32.STUDY.name == "s32"
    assert label_free_rule_s32.main(["left"]) == 0  # every unit done: prints nothing
    assert capsys.readouterr().out == ""
