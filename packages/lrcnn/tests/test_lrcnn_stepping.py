"""StepInBackward: the optimizer step fused into backward updates exactly like optimizer.step()."""

from __future__ import annotations

import copy
import math

import lrcnn
import lrcnn.stepping
import pytest
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


# --- chunk_mib: large Linear layers stepped in row chunks ------------------------------------

#: 504 bytes: 9 rows of Linear(7, 50) in float64 (chunks 9,9,9,9,9,5), 1 row of Linear(50, 23),
#: 2 rows of Linear(23, 3) (chunks 2,1): no chunk size divides its layer's rows
MLP_CHUNK_MIB = 7 * 8 * 9 / 2**20
#: 3 rows of small_cnn(width=4)'s Linear(8, 10) in float64: chunks 3,3,3,1
CNN_CHUNK_MIB = 8 * 8 * 3 / 2**20

SGD_KW = dict(lr=0.05, momentum=0.9, weight_decay=0.01)
ADAMW_KW = dict(lr=0.01, weight_decay=0.1)


def _mlp() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.Linear(7, 50), nn.ReLU(), nn.Linear(50, 23), nn.Tanh(), nn.Linear(23, 3)
    ).double()


def _chunked_training(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    opt_cls: type,
    kw: dict,
    chunk_mib: float | None,
    wrap: bool = False,
    steps: int = 3,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Weights after ``steps`` steps and the input gradient of each step: plain
    ``backward(); opt.step()`` (``chunk_mib=None``) or ``StepInBackward(net, chunk_mib=...)``."""
    run = lrcnn.RowCentric(net, rows=3, depth=5) if wrap else net
    opt = opt_cls(net.parameters(), **kw) if chunk_mib is None else None
    h = None if opt else lrcnn.StepInBackward(net, opt_cls, chunk_mib=chunk_mib, **kw)
    gx = []
    for _ in range(steps):
        xs = x.clone().requires_grad_()
        nn.functional.cross_entropy(run(xs), y).backward()
        gx.append(xs.grad)
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            assert all(p.grad is None for p in net.parameters())  # nothing held after backward
    if h is not None:
        h.remove()
    return [p.detach().clone() for p in net.parameters()], gx


def _assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for u, v in zip(a, b, strict=True):
        assert torch.allclose(u, v, rtol=1e-10, atol=1e-13), float((u - v).abs().max())


@pytest.mark.parametrize("opt_cls", lrcnn.stepping.ELEMENTWISE_OPTIMIZERS, ids=lambda c: c.__name__)
def test_chunked_step_equals_optimizer_step_mlp(opt_cls: type) -> None:
    """Every Linear of an MLP split into row chunks (sizes not dividing the rows): weights after
    three steps and each step's input gradient equal plain ``backward(); opt.step()``, float64,
    for every optimizer the option accepts (SGD with momentum and weight decay, AdamW, ...)."""
    kw = {torch.optim.SGD: SGD_KW, torch.optim.AdamW: ADAMW_KW}.get(opt_cls, dict(lr=0.01))
    torch.manual_seed(3)
    x, y = torch.randn(6, 7, dtype=torch.float64), torch.randint(0, 3, (6,))
    net = _mlp()
    chunks = lrcnn.stepping.linear_chunks(net, MLP_CHUNK_MIB)
    assert [(m.out_features, r) for m, r in chunks.items()] == [(50, 9), (23, 1), (3, 2)]
    ref_w, ref_gx = _chunked_training(copy.deepcopy(net), x, y, opt_cls, kw, None)
    got_w, got_gx = _chunked_training(net, x, y, opt_cls, kw, MLP_CHUNK_MIB)
    _assert_same(ref_w, got_w)
    _assert_same(ref_gx, got_gx)


@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_chunked_step_equals_optimizer_step_cnn(opt: str) -> None:
    """A CNN, plain and row-centric, with its classifier in 4 chunks: the same weights and
    input gradients as plain training with ``opt.step()``. SGD with train-mode BatchNorm; AdamW
    without it: Adam divides by the root of the second moment, so a conv bias in front of a
    BatchNorm (gradient zero in theory, 1e-17 of rounding noise) moves by O(lr) in the noise's
    direction, and row-centric rounds differently from plain there (not the chunks' doing)."""
    opt_cls, kw = (torch.optim.SGD, SGD_KW) if opt == "sgd" else (torch.optim.AdamW, ADAMW_KW)
    torch.manual_seed(1)
    net = small_cnn(width=4, batch_norm=opt == "sgd").double()
    x, y = torch.randn(4, 3, 20, 20, dtype=torch.float64), torch.randint(0, 10, (4,))
    assert list(lrcnn.stepping.linear_chunks(net, CNN_CHUNK_MIB).values()) == [3]
    ref_w, ref_gx = _chunked_training(copy.deepcopy(net), x, y, opt_cls, kw, None)
    for wrap in (False, True):
        got_w, got_gx = _chunked_training(
            copy.deepcopy(net), x, y, opt_cls, kw, CNN_CHUNK_MIB, wrap
        )
        _assert_same(ref_w, got_w)
        _assert_same(ref_gx, got_gx)


def test_chunked_step_keeps_parameters_and_state_dict() -> None:
    """Chunking keeps the model's parameter objects and state_dict keys; the chunk optimizers'
    state lives per chunk (momentum buffers of 9 rows); ``remove()`` restores the layer: its
    weight gets an ordinary ``.grad`` again and eval / no_grad forwards are unchanged."""
    net = _mlp()
    params, keys = list(net.parameters()), list(net.state_dict())
    x = torch.randn(6, 7, dtype=torch.float64)
    with torch.no_grad():
        before = net(x)
    h = lrcnn.StepInBackward(net, torch.optim.SGD, chunk_mib=MLP_CHUNK_MIB, **SGD_KW)
    with torch.no_grad():  # the plain layer outside autograd
        assert torch.equal(net(x), before)
    net(x).sum().backward()
    assert list(net.parameters()) == params and list(net.state_dict()) == keys
    opts = h.chunk_optimizers["0"]
    assert len(opts) == 6
    bufs = [opts[0].state[p]["momentum_buffer"].shape for p in opts[0].param_groups[0]["params"]]
    assert bufs == [(9, 7), (9,)]
    h.remove()
    assert all("forward" not in m.__dict__ for m in net.modules())
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_chunked_linear_used_twice_in_one_forward_is_refused() -> None:
    """A chunked Linear run twice before one backward would be stepped twice (and the second
    input gradient computed with stepped weights): the backward raises."""
    lin = nn.Linear(4, 40).double()
    h = lrcnn.StepInBackward(lin, torch.optim.SGD, chunk_mib=4 * 8 * 10 / 2**20, lr=0.1)
    x = torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="once per backward"):
        (lin(x).sum() + lin(x).sum()).backward()
    h.remove()


def test_chunked_step_refuses_non_finite_before_writing() -> None:
    lin = nn.Linear(4, 40).double()
    before = lin.weight.detach().clone()
    lrcnn.StepInBackward(lin, torch.optim.SGD, chunk_mib=4 * 8 * 10 / 2**20, lr=0.1)
    x = torch.randn(2, 4, dtype=torch.float64)
    x[1, 2] = math.nan
    with pytest.raises(ValueError, match="non-finite"):
        lin(x).sum().backward()
    assert torch.equal(lin.weight.detach(), before)


def test_chunked_step_refuses_a_moved_model() -> None:
    """The chunk optimizers hold views of the weight's memory: after ``.double()`` (new memory)
    the backward raises instead of stepping a stale copy."""
    lin = nn.Linear(4, 40)
    h = lrcnn.StepInBackward(lin, torch.optim.SGD, chunk_mib=4 * 4 * 10 / 2**20, lr=0.1)
    lin.double()
    with pytest.raises(RuntimeError, match="moved to new memory"):
        lin(torch.randn(2, 4, dtype=torch.float64)).sum().backward()
    h.remove()
