"""Session 25c: `TEDPruner(loss_weights="none")` (unit loss weights on the sampled kept set), the
readings `prune_residual_sample_w1` / `_mw2`. The study's script and its rule test were retired in
session 32 (commit e375864 has them). No benchmark run is trained here."""

from __future__ import annotations

import inspect

import pytest
import torch
from ted_prune import TEDPruner
from ted_prune.bench_mnist1d import PRE_S25C, READINGS, _pruner


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
