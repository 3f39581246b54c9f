"""Session 27's readings (`late`: InfoBatch's schedule shape; `thin`: `tail_rate=0.5`), its
diagnosis script's arms and its rule (`scripts/s27_validation.py`) on made-up rows. No benchmark run
is trained here."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from ted_prune import TEDPruner
from ted_prune.bench_mnist1d import READINGS, _pruner

DEFAULTS = {k: p.default for k, p in inspect.signature(TEDPruner).parameters.items()}
STUDY = Path(__file__).resolve().parents[3] / "docs/benchmarks/ted-prune-s27"


@pytest.fixture
def sv(script):
    return script("s27_validation")


def test_readings_are_the_default_plus_one_change():
    base = READINGS["prune_residual_sample_w1_tail20"]
    late = READINGS["prune_residual_sample_w1_tail20_late"]
    thin = READINGS["prune_residual_sample_w1_tail20_thin"]
    assert {k: v for k, v in late.items() if base.get(k) != v} == {
        "warmup": 1, "ramp": 0, "anneal": 3}  # fmt: skip
    assert {k: v for k, v in thin.items() if base.get(k) != v} == {"tail_rate": 0.5}
    p = _pruner("TED:prune_residual_sample_w1_tail20_late", 3500, 20, 0.7, 0, None)
    sizes = p.planned_sizes()
    assert sizes[0] == sizes[17] == sizes[19] == 3500 and len(set(sizes[1:17])) == 1
    assert p.planned_budget()["f"] == pytest.approx(0.7, abs=1e-3)
    q = _pruner("TED:prune_residual_sample_w1_tail20_thin", 3500, 20, 0.7, 0, None)
    d = _pruner("TED_s26", 3500, 20, 0.7, 0, None)
    assert q.tail_rate == 0.5 and d.tail_rate == 1.0 and DEFAULTS["tail_rate"] == 1.0
    assert q.planned_sizes() == d.planned_sizes()


def test_study_arms_seeds_and_schedule_control(sv):
    assert list(range(170, 180)) == sv.SEEDS  # fresh: every earlier rule used seeds <= 169
    assert sv.CANDIDATES == ("late", "thin") and sv.FS == [0.7, 0.5]
    assert sv.ARMS["default"] == "TED_s26"
    r = sv._pruner("random_dynamic_late", 3500, 20, 0.5, 0, None)
    t = _pruner(sv.ARMS["late"], 3500, 20, 0.5, 0, None)
    assert (r.schedule.warmup, r.schedule.ramp, r.schedule.anneal) == (1, 0, 3)
    assert (t.schedule.warmup, t.schedule.ramp, t.schedule.anneal) == (1, 0, 3)


def _rows(sv, delta, seeds=None, min_class=0.5):
    """Made-up rows: accuracy = base + delta[arm][(setting, f)] + a seed wobble for non-zero deltas."""
    out = []
    for arm in sv.ARMS:
        for setting in sv.SETTINGS:
            for f in sv.FS:
                d = delta.get(arm, {}).get((setting, f), 0.0)
                for i, s in enumerate(seeds or sv.SEEDS):
                    acc = 80.0 - 10 * (setting == "noise20") - 5 * (f == 0.5) + i + d
                    acc += 0.2 * (-1) ** i if d else 0.0
                    out.append({"arm": arm, "setting": setting, "f_target": f, "seed": s,
                                "val_accuracy": acc, "f": f, "min_class_kept": min_class})  # fmt: skip
    return out


def _delta(clean7=0.1, clean5=0.1, noise7=1.0, noise5=0.5):
    return {("clean", 0.7): clean7, ("clean", 0.5): clean5, ("noise20", 0.7): noise7,
            ("noise20", 0.5): noise5}  # fmt: skip


def test_rule_adopts_only_a_candidate_meeting_every_criterion(sv):
    res = sv.decide(_rows(sv, {"late": _delta(clean5=-5.0, noise7=3.0), "thin": _delta()}))
    assert res["split"] == "validation"
    assert (
        not res["rule"]["late"]["B3_clean_does_not_lose"]
        and res["rule"]["late"]["B1_noise20_f0.7_ci_above_0"]
    )
    assert res["rule"]["adopt"] == "thin"
    assert res["cells"]["noise20 f=0.7"]["thin-default"]["mean"] == pytest.approx(1.0)
    # both adoptable: the larger noise20 gain
    both = {"late": _delta(noise7=2.0, noise5=1.0), "thin": _delta()}
    assert sv.decide(_rows(sv, both))["rule"]["adopt"] == "late"
    # clean mean -0.2, CI upper end 0 (not above): loses on clean; a mean below -0.3 too
    assert sv.decide(_rows(sv, {"thin": _delta(clean7=-0.2)}))["rule"]["adopt"] is None
    assert sv.decide(_rows(sv, {"thin": _delta(clean5=-0.4)}))["rule"]["adopt"] is None
    assert sv.decide(_rows(sv, {"thin": _delta(noise5=-0.1)}))["rule"]["adopt"] is None
    assert sv.decide(_rows(sv, {"thin": _delta(noise7=0.0)}))["rule"]["adopt"] is None
    rows = _rows(sv, {"thin": _delta()})
    next(r for r in rows if r["arm"] == "thin")["min_class_kept"] = 0.0
    assert sv.decide(rows)["rule"]["adopt"] is None
    partial = [
        r for r in _rows(sv, {"thin": _delta()}) if r["seed"] != 179 or r["arm"] != "InfoBatch"
    ]
    assert sv.decide(partial)["rule"]["adopt"] is None  # incomplete: no decision


def test_diagnosis_script_arms(script):
    nd = script("noise_diagnosis")

    p = nd._pruner("TED_s26_w1r0an3", 3500, 20, 0.7, 0, None)
    r = nd._pruner("random_dynamic_w1r0an3", 3500, 20, 0.7, 0, None)
    assert isinstance(p, TEDPruner) and not isinstance(r, TEDPruner)
    assert p.schedule.state_dict() | {"keep": 0} == r.schedule.state_dict() | {"keep": 0}


def test_study_reproduces_its_committed_decision(sv):
    import json

    rows = [json.loads(x) for x in (STUDY / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 240
    assert sv.decide(rows) == json.loads((STUDY / "decision.json").read_text())
