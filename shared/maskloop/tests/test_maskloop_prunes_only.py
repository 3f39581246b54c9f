"""`MaskedTraining.set_mask(mask, prunes_only=True)`: a swap the caller promises only prunes skips
the revive check and changes no bit (weights, mask, optimizer state, later training) where the
promise holds; a bad value raises naming the argument."""

import pytest
import torch
from maskloop import MaskedTraining, WeightMask, masks, prunable_parameters
from torch import nn

pytestmark = pytest.mark.usefixtures("float64")

OPTIMIZERS = {
    "adamw": lambda p: torch.optim.AdamW(p, 1e-2, weight_decay=0.1),
    "adam-amsgrad": lambda p: torch.optim.Adam(p, 1e-2, amsgrad=True),
    "sgd-momentum": lambda p: torch.optim.SGD(p, 0.1, momentum=0.9),
}


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )


def _nested_masks(model: nn.Module) -> list[WeightMask]:
    """Three masks, each keeping a subset of the one before (a gradual pruner's cuts: 0.3, 0.6,
    0.8 sparsity on random scores, the pruned entries' scores set below every kept one)."""
    g = torch.Generator().manual_seed(1)
    scores = {n: torch.rand(p.shape, generator=g) for n, p in prunable_parameters(model).items()}
    out = []
    for sparsity in (0.3, 0.6, 0.8):
        m = WeightMask.from_scores(scores, sparsity)
        out.append(m)
        scores = {n: torch.where(m[n], s, -1.0) for n, s in scores.items()}
    return out


def _train(make, prunes_only: bool, spy: list[int]) -> tuple[nn.Module, torch.optim.Optimizer]:
    """12 steps with an optimizer hooked by masked training, a pruning-only swap after steps 3, 6
    and 9; `spy` counts the revive checks."""
    model = _net()
    opt = make(model.parameters())
    cuts = _nested_masks(model)
    dense = WeightMask.dense(prunable_parameters(model))
    guard = MaskedTraining(model, dense, opt).attach()
    g = torch.Generator().manual_seed(2)
    for t in range(12):
        if t in (3, 6, 9):
            guard.set_mask(cuts[t // 3 - 1], prunes_only=prunes_only)
        x = torch.randn(16, 6, generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long()).backward()
        opt.step()
    assert guard.mask == cuts[-1]
    for n, p in model.named_parameters():
        if n in guard.mask:
            assert torch.all(p[~guard.mask[n]] == 0)
    return model, opt


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_prunes_only_changes_no_bit_where_the_swap_only_prunes(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Float64, three nested cuts in 12 steps: weights and every optimizer state tensor equal bit
    for bit with and without the promise; the revive check runs only without it (so the saving is
    real: the test fails if `prunes_only` still reads the masks)."""
    spy: list[int] = []
    real = masks._revives_all

    def counting(pairs):  # type: ignore[no-untyped-def]
        spy.append(len(pairs))
        return real(pairs)

    monkeypatch.setattr(masks, "_revives_all", counting)
    runs = {}
    for prunes_only in (False, True):
        spy.clear()
        runs[prunes_only] = _train(OPTIMIZERS[name], prunes_only, spy)
        assert len(spy) == (0 if prunes_only else 3)
    (a, opt_a), (b, opt_b) = runs[True], runs[False]
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa.view(torch.int64), pb.view(torch.int64)), n
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert sa.keys() == sb.keys()
        for key in sa:
            if isinstance(sa[key], torch.Tensor):
                assert torch.equal(sa[key], sb[key]), (n, key)


def test_prunes_only_before_attach_and_without_an_optimizer_only_swaps() -> None:
    """Not attached: the mask is adopted and the model untouched; attached without an optimizer:
    the weights are re-applied as without the promise."""
    model = _net()
    cuts = _nested_masks(model)
    guard = MaskedTraining(model, cuts[0])
    before = [p.detach().clone() for p in model.parameters()]
    guard.set_mask(cuts[1], prunes_only=True)
    assert guard.mask == cuts[1]
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    guard.attach()
    guard.set_mask(cuts[2], prunes_only=True)
    for n, p in model.named_parameters():
        if n in cuts[2]:
            assert torch.all(p[~cuts[2][n]] == 0) and torch.all(p[cuts[2][n]] != 0)


@pytest.mark.parametrize("bad", [1, 0, "yes", None])
def test_prunes_only_must_be_a_bool(bad: object) -> None:
    model = _net()
    cuts = _nested_masks(model)
    guard = MaskedTraining(model, cuts[0]).attach()
    with pytest.raises(TypeError, match="prunes_only must be a bool"):
        guard.set_mask(cuts[1], prunes_only=bad)  # type: ignore[arg-type]
    assert guard.mask == cuts[0]
