"""Session ted-26c: TEDPruner's defaults are loss_weights="none", tail=0.2 (rule s26b, validation);
every reading and cached benchmark row measured before keeps importance weights and no tail."""

import inspect

import pytest
import ted_prune.bench_mnist1d as bm
import torch
from ted_prune import TED, TEDPruner

OPTIONS = ("max_weight", "loss_weights", "tail")


def _opts(p):
    return tuple(getattr(p, k) for k in OPTIONS)


def test_new_defaults_and_the_wrapper_follows():
    params = inspect.signature(TEDPruner).parameters
    assert params["loss_weights"].default == "none" and params["tail"].default is None
    p = TEDPruner(100, 10)
    assert _opts(p) == (2.0, "none", 0.2) and not p.reweights
    data = TED(torch.utils.data.TensorDataset(torch.zeros(20, 3)), epochs=4, budget=0.7)
    assert _opts(data.pruner) == (2.0, "none", 0.2)


def test_earlier_methods_and_readings_pin_the_old_defaults():
    got = {m: _opts(bm._pruner(m, 200, 10, 0.7, 0, None))
           for m in ("TED", "TED+fresh", "TED_spec", "TED=prune_residual_sample", "TED_s25c",
                     "TED_s26", "TED:prune_residual_sample_w1_tail20")}  # fmt: skip
    assert got == {
        "TED": (4.0, "importance", "none"),
        "TED+fresh": (4.0, "importance", "none"),
        "TED_spec": (2.0, "importance", "none"),
        "TED=prune_residual_sample": (4.0, "importance", "none"),
        "TED_s25c": (2.0, "importance", "none"),
        "TED_s26": (2.0, "none", 0.2),
        "TED:prune_residual_sample_w1_tail20": (2.0, "none", 0.2),
    }
    assert bm.PRE_S25C == {"max_weight": 4.0, "loss_weights": "importance", "tail": "none",
                           "noise_schedule": "off", "score_every": 1}  # fmt: skip
    # every reading names its weights and tail: none follows a later default flip
    assert all("loss_weights" in r and "tail" in r for r in bm.READINGS.values())
    # the adopted reading is now exactly the defaults (so TED_s26 runs it)
    params = inspect.signature(TEDPruner).parameters
    p = TEDPruner(200, 10, budget=0.7, **bm.READINGS["prune_residual_sample_w1_tail20"])
    q = TEDPruner(200, 10, budget=0.7)
    assert p.state_dict()["extra"]["options"] == q.state_dict()["extra"]["options"]
    assert {k for k, v in bm.READINGS["prune_residual_sample_w1_tail20"].items()
            if params[k].default != v} == {"tail", "noise_schedule"}  # fmt: skip
    # (noise_schedule: every reading pins "off", the default is None since session ted-28b;
    # score_every: every reading pins 1, the default again since rule s32b reverted rule s32)
    # the grid's `TED` rows (reading prune_residual_sample) are still the `TED` method's runs
    assert bm._is_default_reading("prune_residual_sample")
    assert not bm._is_default_reading("prune_residual_sample_w1_tail20")


def test_default_tail_is_off_where_it_cannot_apply_and_explicit_tails_still_checked():
    assert TEDPruner(100, 10, selection="topk").tail == "none"
    assert TEDPruner(100, 10, grads="full").tail == "none"
    with pytest.raises(ValueError, match="tail.*selection='sample'"):
        TEDPruner(100, 10, selection="topk", tail=0.2)


def test_default_tail_without_observations_selects_like_no_tail():
    """A selection before any logits are stored (made-up scores): the default tail is empty."""

    def scored(**kw):
        p = TEDPruner(400, 10, keep=0.5, warmup=1, ramp=0, seed=0, **kw)
        g = torch.Generator().manual_seed(0)
        p.scores = torch.rand(400, generator=g, dtype=torch.float64)
        p.has_score = torch.ones(400, dtype=torch.bool)
        p.epoch = 5
        return p.select()

    a, b = scored(), scored(tail="none")
    assert len(a) == len(b) == 200
