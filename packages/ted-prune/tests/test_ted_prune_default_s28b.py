"""Session ted-28b: TEDPruner's default noise schedule is `noise_schedule=None`, i.e.
"late_epoch0" with the keep floor `noise_min_keep=0.5` where it applies (rule s28b, validation);
every reading, grid method and cached benchmark row measured before keeps "off"."""

import inspect
from pathlib import Path

import ted_prune.bench_mnist1d as bm
import torch
from ted_prune import TED, TEDPruner
from ted_prune.bench import make_pruner

ROOT = Path(__file__).resolve().parents[3]


def _noise(p):
    return p.noise_schedule, p.noise_min_keep, p.noise_active


def test_new_default_applies_where_it_can_and_the_wrapper_follows():
    params = inspect.signature(TEDPruner).parameters
    assert params["noise_schedule"].default is None and params["noise_min_keep"].default is None
    assert _noise(TEDPruner(4500, 20, budget=0.7)) == ("late_epoch0", 0.5, True)
    # below the floor: since session 29 the default's second plan (rho_0 0.375 >= 0.35) at f = 0.5
    assert _noise(TEDPruner(4500, 20, budget=0.5)) == ("late_epoch0", 0.5, True)
    assert _noise(TEDPruner(4500, 20, budget=0.3)) == ("late_epoch0", 0.5, False)
    assert _noise(TEDPruner(4500, 20, keep=0.5))[0] == "off"  # no budget: nothing to solve
    assert _noise(TEDPruner(4500, 20, budget=0.7, grads="full"))[0] == "off"
    assert _noise(TEDPruner(4500, 20, budget=0.7, warmup=0))[0] == "off"
    for e in (1, 2, 3):  # too few epochs for a late plan: the default schedule, no error
        assert TEDPruner(200, e, budget=0.9).noise_active is False
    data = TED(torch.utils.data.TensorDataset(torch.zeros(20, 3)), epochs=20, budget=0.7)
    assert _noise(data.pruner) == ("late_epoch0", 0.5, True)
    # an explicit schedule keeps its earlier meaning (no floor unless given)
    assert _noise(TEDPruner(4500, 20, budget=0.5, noise_schedule="late_epoch0")) == (
        "late_epoch0", 0.0, True)  # fmt: skip
    assert _noise(TEDPruner(4500, 20, budget=0.7, noise_schedule="off"))[0] == "off"


def test_the_default_is_s28b_candidate_bit_for_bit():
    a = TEDPruner(600, 20, budget=0.7, seed=3)
    b = TEDPruner(600, 20, budget=0.7, seed=3, noise_schedule="late_epoch0", noise_min_keep=0.5)
    na, nb = a.state_dict()["extra"]["noise"], b.state_dict()["extra"]["noise"]
    # since session 29 the default also carries the second floor (inactive above the first)
    assert na.pop("norescore_min_keep") == 0.35 and nb.pop("norescore_min_keep") is None
    assert na == nb and a._late_norescore is False
    assert a._late.state_dict() == b._late.state_dict()
    assert a.schedule.state_dict() == b.schedule.state_dict()


def test_earlier_methods_and_readings_pin_the_old_schedule():
    old = ("TED", "TED+fresh", "TED_spec", "TED=prune_residual_sample", "TED_s25c", "TED_s26",
           "TED:prune_residual_sample_w1_tail20", "TED:prune_residual_sample_w1_tail20_late")  # fmt: skip
    got = {m: bm._pruner(m, 4500, 20, 0.7, 0, None).noise_schedule for m in old}
    assert got == dict.fromkeys(old, "off")
    assert _noise(bm._pruner("TED_s28b", 4500, 20, 0.7, 0, None)) == ("late_epoch0", 0.5, True)
    assert all(r["noise_schedule"] == "off" for r in bm.READINGS.values())
    assert bm.PRE_S26["noise_schedule"] == bm.PRE_S25C["noise_schedule"] == "off"
    for m in ("TED", "TED_norm_class"):  # the digits / text suites' TED
        assert make_pruner(m, 4500, 20, 0.7, 0).noise_schedule == "off"
    # the grid's `TED` rows are still the default reading's (`run_scoring` re-times them)
    assert bm._is_default_reading("prune_residual_sample")


# `--resume` over the committed validation caches (s27-s30): `test_ted_prune_validation_script.py`
