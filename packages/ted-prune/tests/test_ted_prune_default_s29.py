"""Session ted-29: TEDPruner's default adds the low-budget noise plan, `noise_norescore_min_keep`
0.35 under `noise_schedule=None` where its "late_epoch0" applies (rule s29, validation); `TED_s28b`
and every earlier method keep their meaning (the resume tests are in `test_ted_prune_default_s28b.py`)."""

import ted_prune.bench_mnist1d as bm
import torch
from ted_prune import TED, TEDPruner
from ted_prune.ted import NOISE_NORESCORE_MIN_KEEP_S29


def test_the_default_and_where_it_applies():
    assert NOISE_NORESCORE_MIN_KEEP_S29 == 0.35
    assert TEDPruner(3500, 20, budget=0.5).noise_norescore_min_keep == 0.35
    assert TEDPruner(3500, 20, budget=0.5)._late_norescore is True
    assert TEDPruner(3500, 20, budget=0.7)._late_norescore is False  # above the floor: s28b's
    assert TEDPruner(3500, 20, budget=0.3).noise_active is False  # rho_0 0.125 < 0.35
    assert TEDPruner(3500, 20, keep=0.5).noise_norescore_min_keep is None  # "off": no budget
    assert (
        TEDPruner(3500, 20, budget=0.5, noise_schedule="late_epoch0").noise_norescore_min_keep
        is None
    )
    data = TED(torch.utils.data.TensorDataset(torch.zeros(20, 3)), epochs=20, budget=0.5)
    assert data.pruner.noise_norescore_min_keep == 0.35


def test_s28b_method_is_pinned_and_s29_is_the_default():
    old = bm._pruner("TED_s28b", 3500, 20, 0.5, 0, None)
    assert old.noise_norescore_min_keep is None and old.noise_active is False
    new = bm._pruner("TED_s29", 3500, 20, 0.5, 0, None)
    ref = TEDPruner(3500, 20, budget=0.5, seed=0)
    assert new.state_dict()["extra"]["noise"] == ref.state_dict()["extra"]["noise"]
    assert new._late.state_dict() == ref._late.state_dict()
    # s28b's default written out is the old default bit for bit (same late plan and floor)
    s28b = TEDPruner(3500, 20, budget=0.7, seed=0, **bm.S28B)
    assert s28b._late.state_dict() == TEDPruner(3500, 20, budget=0.7, seed=0)._late.state_dict()
