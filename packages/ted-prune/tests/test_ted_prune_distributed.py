"""Under torchrun (2 gloo ranks) every rank computes the same selection and trains on its share."""

import textwrap

import pytest
import torch
from maskloop.testing import run_torchrun

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from maskloop import fit, seed_everything, Callback, IndexedDataset
    from ted_prune import TEDPruner, PrunerCallback

    seed_everything(0)
    x = torch.randn(64, 4); y = (x[:, 0] > 0).long()
    ds = TensorDataset(x, y)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    pruner = TEDPruner(ds, epochs=4, keep=0.5, warmup=1, ramp=0, rescore_every=1)
    seen, sels = {}, []

    class Record(Callback):
        order = 50
        def on_epoch_start(self, state):
            sels.append(pruner.select(state.epoch).mask())
        def on_loss(self, state):
            seen.setdefault(state.epoch, []).extend(state.indices.tolist())

    fit(model, DataLoader(IndexedDataset(ds), sampler=pruner.sampler, batch_size=8), epochs=4,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loss_fn=lambda o, t: nn.functional.cross_entropy(o, t, reduction="none"),
        callbacks=[PrunerCallback(pruner, batch_size=8), Record()], progress=False)
    rank = int(os.environ["RANK"])
    torch.save({"scores": pruner.scores, "sels": torch.stack(sels[1:]),
                "seen": {e: torch.tensor(v) for e, v in seen.items()},
                "trained": torch.tensor([r["trained"] for r in pruner.log])},
               sys.argv[1] + f"/rank{rank}.pt")
    """
)


@pytest.mark.distributed
def test_ranks_share_one_selection(tmp_path) -> None:
    a, b = run_torchrun(SCRIPT, tmp_path)
    assert torch.equal(a["scores"], b["scores"])
    assert torch.equal(a["sels"], b["sels"])
    assert a["sels"].sum(1).tolist() == [32, 32, 32]
    for e in (1, 2, 3):
        sa, sb = set(a["seen"][e].tolist()), set(b["seen"][e].tolist())
        assert not sa & sb  # disjoint shards of 32 samples (16 each)
        assert sa | sb == set(torch.nonzero(a["sels"][e - 1]).flatten().tolist())
    assert a["trained"].tolist() == [64.0, 32.0, 32.0, 32.0]  # summed over ranks


NOISE_E0_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    import torch.distributed as dist
    from ted_prune import TEDPruner

    dist.init_process_group("gloo")
    rank = int(os.environ["RANK"])
    p = TEDPruner(64, 20, budget=0.6, seed=0, noise_schedule="late_epoch0")
    idx = torch.arange(rank, 64, 2)  # this rank's 32 samples, in the order observed
    y = idx % 2
    logits = torch.zeros(32, 2)
    # rank 0: its last half (16) has p(label) ~ 0.0003 (loss ~ 8 > 1.5 ln 2); rank 1: none
    high = (torch.arange(32) >= 16) & (rank == 0)
    logits[torch.arange(32), y] = torch.where(high, -4.0, 4.0)
    logits[torch.arange(32), 1 - y] = torch.where(high, 4.0, -4.0)
    feats = torch.randn(32, 3, generator=torch.Generator().manual_seed(rank))
    for b in range(0, 32, 8):
        p.observe(idx[b:b + 8], logits[b:b + 8], feats[b:b + 8], y[b:b + 8])
    p.end_epoch()
    torch.save({"noisy": torch.tensor(p.noisy), "stat": torch.tensor(p.noise_statistic),
                "sizes": torch.tensor(p.planned_sizes())}, sys.argv[1] + f"/rank{rank}.pt")
    """
)


@pytest.mark.distributed
def test_epoch0_noise_detector_sums_counts_over_ranks(tmp_path) -> None:
    """`noise_schedule="late_epoch0"` counts each rank's last half and sums the counts: 16 high of
    32 counted = 0.5 on both ranks (rank 1 alone would see 0 and stay clean), one decision."""
    a, b = run_torchrun(NOISE_E0_SCRIPT, tmp_path)
    assert bool(a["noisy"]) and bool(b["noisy"])
    assert float(a["stat"]) == float(b["stat"]) == 0.5
    assert torch.equal(a["sizes"], b["sizes"]) and int(a["sizes"][1]) < 64
