"""Session 25e: the readings `prune_residual_sample_mw1.5` / `_mw1` (the current defaults but
`max_weight`) and what a lower cap does. The study's scripts (`cap_validation.py` and the shared
`uniform_mix_validation.py`) and their tests were retired in session 32 (commit e375864 has them).
No benchmark run is trained here."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from ted_prune import TEDPruner
from ted_prune.bench_mnist1d import PRE_S26, READINGS, _pruner

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "docs" / "benchmarks"
# the defaults the study ran with (sessions 25d-26b: `TED_s25c`, importance weights, no tail)
DEFAULTS = {k: p.default for k, p in inspect.signature(TEDPruner).parameters.items()} | PRE_S26


@pytest.mark.parametrize(("name", "cap"), [("prune_residual_sample_mw1.5", 1.5),
                                           ("prune_residual_sample_mw1", 1.0)])  # fmt: skip
def test_cap_readings_are_the_current_defaults_but_max_weight(name, cap):
    reading = READINGS[name]
    assert reading["max_weight"] == cap < DEFAULTS["max_weight"] == 2.0
    assert all(DEFAULTS[k] == v for k, v in reading.items() if k != "max_weight")
    pruner = _pruner(f"TED:{name}", 600, 10, 0.7, 0, None)  # what the study's arm builds
    assert pruner.max_weight == cap and pruner.selection == "sample"


def test_lower_cap_clips_more_weights():
    """Same made-up scores (float64), same seed: the cap leaves the kept set unchanged and only
    narrows the weights' spread (max / min ratio; a lower cap never widens it)."""
    out = {}
    for cap in (2.0, 1.5, 1.0):
        p = TEDPruner(400, 10, keep=0.5, warmup=1, ramp=0, seed=0, max_weight=cap, **PRE_S26)
        g = torch.Generator().manual_seed(0)
        p._obs.labels = torch.randint(0, 4, (400,), generator=g)
        p.scores = torch.rand(400, generator=g, dtype=torch.float64)
        p.has_score = torch.ones(400, dtype=torch.bool)
        p.epoch = 5
        s = p.select()
        out[cap] = (s.indices, p.weights(s.indices).double())
    assert torch.equal(out[2.0][0], out[1.5][0]) and torch.equal(out[2.0][0], out[1.0][0])
    ratio = {c: float(w.max() / w.min()) for c, (_, w) in out.items()}
    assert ratio[1.0] <= ratio[1.5] <= ratio[2.0]
    assert ratio[1.0] < ratio[2.0]
