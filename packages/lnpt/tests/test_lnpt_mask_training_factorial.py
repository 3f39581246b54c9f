"""Session 30's mask x training diagnostic: the `lnpt+supervised` arm of the student-lr check, the
script's pinned cache key (session 27's units reused) and its committed verdict rule."""

import json
from pathlib import Path

import lnpt.student_lr as sl
import pytest
import torch
from lnpt.bench import BenchConfig
from lnpt.student_lr import StudentLrCheckConfig, student_lr_check
from maskloop.report import PairedDifference

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def factorial(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import mask_training_factorial

    return mask_training_factorial


def test_lnpt_supervised_arm_trains_lnpts_mask_with_labels(tmp_path, monkeypatch):
    """The arm scores LNPT's mask (the same mask as the label-free arm) and trains it through the
    supervised path; a label-free arm through the label-free path."""
    calls = []
    real_sup, real_lf = sl.train_supervised, sl.train_label_free

    def sup(student, data, part, epochs, cfg, seed, mask, *a, **kw):
        calls.append(("supervised", torch.cat([m.flatten() for _, m in mask.items()])))
        return real_sup(student, data, part, epochs, cfg, seed, mask, *a, **kw)

    def lf(student, teacher, data, epochs, cfg, seed, mask, *a, **kw):
        calls.append(("label-free", torch.cat([m.flatten() for _, m in mask.items()])))
        return real_lf(student, teacher, data, epochs, cfg, seed, mask, *a, **kw)

    monkeypatch.setattr(sl, "train_supervised", sup)
    monkeypatch.setattr(sl, "train_label_free", lf)
    bench = BenchConfig(
        models=("mlp",), epochs={"mlp": 1}, teacher_epochs={"mlp": 1}, score_batches=1
    )
    sc = StudentLrCheckConfig(
        model="mlp", seeds=1, lrs=(1e-2,), arms=("lnpt+supervised", "lnpt+label-free"), bench=bench
    )
    res, _ = student_lr_check(sc, tmp_path, "t", progress=False)
    assert {r.method for r in res.records} == {"lr=0.01 lnpt+supervised", "lr=0.01 lnpt+label-free"}
    assert [c[0] for c in calls] == ["supervised", "label-free"]
    assert torch.equal(calls[0][1], calls[1][1])  # one LNPT mask for both arms
    assert 0 < int(calls[0][1].sum()) < calls[0][1].numel()  # a sparse mask, not dense


@pytest.mark.parametrize("arms", [("lnpt+random",), ("lnpt+supervised", "lnpt+supervised"), ()])
def test_student_lr_check_refuses_unknown_or_repeated_arms(arms):
    with pytest.raises(ValueError, match="arms must be distinct"):
        StudentLrCheckConfig(arms=arms).check()


def test_factorial_script_keeps_session_27s_cache_key(factorial):
    """The script's config hashes to session 27's per-seed key, so its committed units are reused;
    the 240-epoch reading keeps session 27's unit name."""
    sc = factorial.config(sl.STUDENT_LR_ARMS)
    bench = sc.bench.key_dict()
    for k in ("student_lr", "student_warmup_epochs", "student_schedule"):
        bench.pop(k, None)
    for k in ("models", "seeds", "sparsities", "arms"):
        bench.pop(k)
    fixed = {"model": "cnn", "sparsity": 0.95, "validation_fraction": 0.25, "bench": bench}
    from lnpt.ablation import report_hash

    assert report_hash(json.dumps(fixed, sort_keys=True, default=str)) == factorial.S27_KEY
    assert [r.key for r in sc.candidates] == ["lr=0.01,epochs=480,warmup=5", "lr=0.01,warmup=5"]
    assert list(sc.seed_range) == list(range(7, 14))


def _d(mean, low, high, n=7):
    return PairedDifference(mean, low, high, n)


def test_factorial_verdict_rule_on_made_up_numbers(factorial):
    v = factorial.verdict
    assert v(_d(0.01, 0.002, 0.02), _d(-0.01, -0.02, -0.001)) == "mask"  # mask wins first
    assert v(_d(0.0, -0.01, 0.01), _d(-0.01, -0.02, -0.001)) == "training"
    assert v(_d(0.0, -0.01, 0.01), _d(-0.01, -0.02, 0.001)) == "unresolved"
    assert v(_d(0.0, -0.01, 0.01), None) == "unresolved"
    assert v(_d(0.02, 0.01, 0.03, n=4), _d(-0.01, -0.02, -0.001)).startswith("partial")
    assert v(None, None).startswith("partial")
    # T_SNIP over fewer than 5 seeds cannot give "training"
    assert v(_d(0.0, -0.01, 0.01), _d(-0.01, -0.02, -0.001, n=4)) == "unresolved"
