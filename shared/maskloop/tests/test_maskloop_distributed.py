"""fit under torchrun with two gloo processes on the CPU: ranks end with identical weights."""

import textwrap

import pytest
import torch
from maskloop.testing import run_torchrun

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    import torch.distributed as dist
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from maskloop import fit, seed_everything, MaskedTraining, WeightMask, prunable_parameters

    dist.init_process_group("gloo")  # two fits in one script: one process group for both
    seed_everything(0)
    x = torch.randn(64, 4); y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    mask = WeightMask.from_scores({n: p.abs() for n, p in prunable_parameters(model).items()}, 0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = []
    fit(model, DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True), epochs=3, optimizer=opt,
        loss_fn=lambda o, t: nn.functional.cross_entropy(o, t, reduction="none"),
        callbacks=[MaskedTraining(model, mask, opt)], progress=False)
    # a label-free objective (regress a fixed random projection of x) through the same loop:
    # it calls model(...) (the DDP wrapper), so gradients are all-reduced across ranks
    proj = torch.randn(4, 2)
    student = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    fit(student, DataLoader(TensorDataset(x), batch_size=8, shuffle=True), epochs=2,
        optimizer=torch.optim.SGD(student.parameters(), lr=0.1),
        objective=lambda m, b: ((m(b[0]) - b[0] @ proj) ** 2).sum(-1), progress=False)
    from maskloop import distributed
    rank = distributed.rank()
    flat = torch.cat([p.detach().flatten() for p in [*model.parameters(), *student.parameters()]])
    stats = torch.tensor([rank + 1.0, 10.0 * rank])
    named = dict(model.named_parameters())  # no re-apply under Adam/SGD: the gradient hook suffices
    held = all(bool((named[n][~m] == 0).all()) for n, m in mask.items())
    torch.save({"flat": flat, "held": held, "world": distributed.world_size(), "rank": rank,
                "sum": distributed.all_reduce_(stats.clone()),
                "mean": distributed.all_reduce_(stats.clone(), "mean"),
                "max": distributed.all_reduce_(stats.clone(), "max"),
                "bcast": distributed.broadcast_(stats.clone(), src=1)},
               sys.argv[1] + f"/rank{rank}.pt")
    # run_torchrun's launcher waits for both ranks and leaves without tearing the group down
    """
)


@pytest.mark.distributed
def test_fit_under_torchrun_two_ranks_agree(tmp_path) -> None:
    ra, rb = run_torchrun(SCRIPT, tmp_path)
    a, b = ra["flat"], rb["flat"]
    assert torch.equal(a, b) and ra["held"] and rb["held"]
    # and training happened (not the initial weights), with the mask held
    assert a.abs().sum() > 0
    # maskloop.distributed: rank, world size and reductions over the two ranks
    assert (ra["rank"], rb["rank"], ra["world"], rb["world"]) == (0, 1, 2, 2)
    for r in (ra, rb):
        assert r["sum"].tolist() == [3.0, 10.0] and r["mean"].tolist() == [1.5, 5.0]
        assert r["max"].tolist() == [2.0, 10.0] and r["bcast"].tolist() == [2.0, 10.0]


@pytest.mark.distributed
def test_run_torchrun_reports_a_failing_script(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="torchrun failed"):
        run_torchrun("import sys\nraise SystemExit(3)\n", tmp_path)
    with pytest.raises(ValueError, match="nproc"):
        run_torchrun("", tmp_path, nproc=0)
