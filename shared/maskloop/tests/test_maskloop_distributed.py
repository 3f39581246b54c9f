"""fit under torchrun with two gloo processes on the CPU: ranks end with identical weights."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    import torch.distributed as dist
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from maskloop import fit, seed_everything, MaskedTraining, WeightMask, prunable_parameters

    seed_everything(0)
    x = torch.randn(64, 4); y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    mask = WeightMask.from_scores({n: p.abs() for n, p in prunable_parameters(model).items()}, 0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = []
    fit(model, DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True), epochs=3, optimizer=opt,
        loss_fn=lambda o, t: nn.functional.cross_entropy(o, t, reduction="none"),
        callbacks=[MaskedTraining(model, mask, opt)], progress=False)
    rank = int(__import__("os").environ["RANK"])
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save(flat, sys.argv[1] + f"/rank{rank}.pt")
    """
)


@pytest.mark.distributed
def test_fit_under_torchrun_two_ranks_agree(tmp_path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert torch.equal(a, b)
    # and training happened (not the initial weights), with the mask held
    assert a.abs().sum() > 0
