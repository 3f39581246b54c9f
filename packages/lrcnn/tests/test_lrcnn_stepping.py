"""StepInBackward: the optimizer step fused into backward updates exactly like optimizer.step()."""

from __future__ import annotations

import copy
import math

import lrcnn
import torch
from lrcnn.models import small_cnn
from torch import nn


def _train(model: nn.Module, fused: bool, wrap: bool, steps: int = 3) -> list[torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 20, 20, dtype=torch.float64)
    y = torch.randint(0, 10, (4,))
    run = lrcnn.RowCentric(model, rows=3, depth=5) if wrap else model
    if fused:
        h = lrcnn.StepInBackward(model.parameters(), torch.optim.SGD, lr=0.05, momentum=0.9)
        for _ in range(steps):
            nn.functional.cross_entropy(run(x), y).backward()
            assert all(p.grad is None for p in model.parameters())  # freed inside backward
        h.remove()
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(run(x), y).backward()
            opt.step()
    return [p.detach().clone() for p in model.parameters()]


def test_fused_step_equals_optimizer_step() -> None:
    """Plain and row-centric training with the fused step reach optimizer.step()'s weights."""
    torch.manual_seed(1)
    net = small_cnn(width=4).double()
    ref = _train(copy.deepcopy(net), fused=False, wrap=False)
    for wrap in (False, True):
        got = _train(copy.deepcopy(net), fused=True, wrap=wrap)
        for a, b in zip(ref, got):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_remove_restores_ordinary_gradients() -> None:
    net = nn.Linear(3, 2)
    h = lrcnn.StepInBackward(net.parameters(), torch.optim.SGD, lr=0.1)
    h.remove()
    net(torch.randn(2, 3)).sum().backward()
    assert net.weight.grad is not None


def test_finite_check_exact_without_a_big_temporary() -> None:
    """The cheap finite check: a sum that overflows on finite entries is not a false alarm; a single
    inf or NaN entry anywhere is caught."""
    from lrcnn.stepping import _all_finite

    big = torch.full((4, 4), 3e38, dtype=torch.float32)  # finite, but the sum overflows
    assert not torch.isfinite(big.sum()) and _all_finite(big)
    for bad in (math.inf, -math.inf, math.nan):
        t = torch.randn(5, 7)
        t[3, 2] = bad
        assert not _all_finite(t)
    assert _all_finite(torch.randn(5, 7))
