"""Session 25c: `TEDPruner(loss_weights="none")` (unit loss weights on the sampled kept set), the
readings `prune_residual_sample_w1` / `_mw2`, and the study's rule (`scripts/weights_validation.py`)
on made-up rows. No benchmark run is trained here."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from ted_prune import TEDPruner
from ted_prune.bench_mnist1d import PRE_S25C, READINGS, _pruner


@pytest.fixture
def wv(script):
    return script("weights_validation")


@pytest.mark.parametrize(("value", "err"), [("uniform", ValueError), ("", ValueError),
                                            (None, TypeError), (1, TypeError)])  # fmt: skip
def test_bad_loss_weights_names_the_argument(value, err):
    with pytest.raises(err, match="loss_weights"):
        TEDPruner(100, 10, keep=0.5, loss_weights=value)


def _scored(loss_weights, n=400, seed=0, **kw):
    """A pruner past warm-up with made-up scores (float64), selecting epoch 5 at keep 0.5."""
    p = TEDPruner(n, 10, keep=0.5, warmup=1, ramp=0, seed=seed, loss_weights=loss_weights, **kw)
    g = torch.Generator().manual_seed(seed)
    p._obs.labels = torch.randint(0, 4, (n,), generator=g)
    p.scores = torch.rand(n, generator=g, dtype=torch.float64)
    p.has_score = torch.ones(n, dtype=torch.bool)
    p.epoch = 5
    return p


def test_none_keeps_the_same_samples_with_unit_weights():
    a, b = _scored("importance"), _scored("none")
    sa, sb = a.select(), b.select()
    assert torch.equal(sa.indices, sb.indices)  # same draw: only the weights differ
    wa, wb = a.weights(sa.indices), b.weights(sb.indices)
    assert torch.equal(wb, torch.ones_like(wb))
    assert not torch.allclose(wa, torch.ones_like(wa))  # the default does weight them
    assert a.reweights and not b.reweights
    assert b.state_dict()["extra"]["options"]["loss_weights"] == "none"


@pytest.mark.parametrize(("name", "key", "value"), [("prune_residual_sample_w1", "loss_weights", "none"),
                                                    ("prune_residual_sample_mw2", "max_weight", 2.0)])  # fmt: skip
def test_weight_readings_are_the_defaults_but_one_option(name, key, value):
    # the grid's `TED` method: the defaults before session ted-25d (max_weight=4.0)
    defaults = {k: p.default for k, p in inspect.signature(TEDPruner).parameters.items()} | PRE_S25C
    reading = READINGS[name]
    assert reading[key] == value != defaults[key]
    assert all(defaults[k] == v for k, v in reading.items() if k != key)
    pruner = _pruner(f"TED:{name}", 600, 10, 0.7, 0, None)  # what the study's arm builds
    assert getattr(pruner, key) == value and pruner.selection == "sample"


def _arms(w1=(1.0, -0.1), mw2=(0.5, -1.0), rd=(1.2, 0.0)):
    """{arm: (clean delta, noise20 delta)} for `made_up_rows`."""
    return {"default": (0.0, 0.0), "w1": w1, "mw2": mw2, "random_dynamic": rd}


def test_weights_rule_adopts_only_a_candidate_meeting_every_criterion(wv, made_up_rows):
    seeds = wv.SEEDS
    assert seeds == list(range(130, 140))  # fresh: every earlier rule used seeds <= 129
    res = wv.decide(made_up_rows(_arms(), seeds))
    assert res["split"] == "validation"
    assert res["rule"]["mw2"]["A1_clean_ci_above_0"]
    assert not res["rule"]["mw2"]["A2_noise20_mean_ge_-0.3"]
    assert res["rule"]["w1"]["adopt"] and res["rule"]["adopt"] == "w1"
    assert res["settings"]["clean"]["w1-random_dynamic"]["mean"] == pytest.approx(-0.2)
    assert wv.decide(made_up_rows(_arms(mw2=(1.5, 0.0)), seeds))["rule"]["adopt"] == "mw2"
    assert wv.decide(made_up_rows(_arms(mw2=(1.0, 0.0)), seeds))["rule"]["adopt"] == "mw2"  # tie
    rows = made_up_rows(_arms(), seeds)
    next(r for r in rows if r["arm"] == "w1")["min_class_kept"] = 0.0
    assert wv.decide(rows)["rule"]["adopt"] is None
    partial = [r for r in made_up_rows(_arms(), seeds) if r["seed"] != 139 or r["arm"] != "w1"]
    assert wv.decide(partial)["rule"]["adopt"] is None
    flat = wv.decide(made_up_rows(_arms(w1=(0.0, 0.0), mw2=(0.0, 0.0)), seeds))
    assert flat["rule"]["adopt"] is None
    json.dumps(flat)  # decision.json is written from it
