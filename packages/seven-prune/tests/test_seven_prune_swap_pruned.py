"""A cut's pruning-only swap (`GradualPruner._swap_pruned`, session 32): no revive check, the float
mask for the re-zeroing and AdamW's first moments, the kept count reused. It must leave weights,
masks, scores and the optimizer's moments bit for bit as `MaskedTraining.set_mask` (the flag
`pruning.SWAP_FAST_PATH` off), in float32 (float mask) and float64 (the uint8 view), with -0.0,
negative values and ties at the threshold."""

from __future__ import annotations

import pytest
import torch
from maskloop import WeightMask
from maskloop import masks as _masks
from seven_prune import SevenPruner, TaylorPruner, pruning
from seven_prune.pruning import select_flat


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int64 if t.dtype == torch.float64 else torch.int32)


def _run(
    enc: type[torch.nn.Module], cls: type, dtype: torch.dtype, hooked: bool, fast: bool
) -> tuple[torch.nn.Module, object, object, int]:
    """10 steps, cuts at updates 1, 3, 5, 7, 8; returns (model, pruner, optimizer, fast swaps)."""
    gen = torch.Generator().manual_seed(5)
    xs = torch.randn(10, 6, 12, generator=gen, dtype=dtype)
    ys = torch.randint(0, 2, (10, 6), generator=gen)
    torch.manual_seed(0)
    model = enc().to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    pr = cls(
        model, 0.7, start=0, window=10, delta_t=2, targets=r"encoder\.",
        optimizer=opt if hooked else None,
    )  # fmt: skip
    swaps = 0
    old = pruning.SWAP_FAST_PATH
    pruning.SWAP_FAST_PATH = fast
    try:
        for x, y in zip(xs, ys):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            before = pr.mask
            pr.step()
            if pr.mask is not before:
                swaps += 1
                owner, n = pr._kept
                assert owner is pr.mask and n == int(pr._alive_flat().sum())
    finally:
        pruning.SWAP_FAST_PATH = old
    return model, pr, opt, swaps


@pytest.mark.parametrize("cls", [SevenPruner, TaylorPruner])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hooked", [True, False])
def test_runs_with_the_fast_swap_equal_set_mask_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
    two_linear_encoder: type[torch.nn.Module],
    cls: type,
    dtype: torch.dtype,
    hooked: bool,
) -> None:
    checks: list[int] = []
    revives = _masks._revives_all
    monkeypatch.setattr(_masks, "_revives_all", lambda pairs: checks.append(1) or revives(pairs))
    m_new, p_new, o_new, swaps = _run(two_linear_encoder, cls, dtype, hooked, fast=True)
    fast_checks = len(checks)
    m_old, p_old, o_old, _ = _run(two_linear_encoder, cls, dtype, hooked, fast=False)
    assert swaps == 5 and 0.6 < p_new.achieved_sparsity <= 0.7
    # the fast path ran: set_mask's revive check only where set_mask ran (hooked, fast off)
    assert fast_checks == 0 and len(checks) == (swaps if hooked else 0)
    for n in p_new.names:
        assert torch.equal(p_new.mask[n], p_old.mask[n]), n
    for a, b in zip(m_new.parameters(), m_old.parameters()):
        assert torch.equal(_bits(a.detach()), _bits(b.detach()))
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(_bits(o_new.state[a][key]), _bits(o_old.state[b][key])), key
    for key in p_new.state:
        for a, b in zip(p_new.state[key], p_old.state[key]):
            assert torch.equal(_bits(a), _bits(b)), key


def _primed(enc: type[torch.nn.Module], dtype: torch.dtype) -> tuple[object, object]:
    """A SevenPruner with hooked AdamW after two steps (moments, fixed state, the float mask)."""
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    model = enc().to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    pr = SevenPruner(
        model, 0.7, start=0, window=20, delta_t=10, targets=r"encoder\.", optimizer=opt
    )
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        x = torch.randn(6, 12, generator=gen, dtype=dtype)
        torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1] * 3)).backward()
        opt.step()
        pr.step()
    return pr, opt


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_swap_pruned_equals_set_mask_on_signed_zeros_and_negatives(
    two_linear_encoder: type[torch.nn.Module], dtype: torch.dtype
) -> None:
    """Weights and first moments holding -0.0, +0.0 and negative values where entries are newly
    pruned, kept and already pruned: the fast swap writes the same bits as `set_mask`."""
    results = []
    for fast in (True, False):
        pr, opt = _primed(two_linear_encoder, dtype)
        gen = torch.Generator().manual_seed(7)
        alive = torch.rand(pr.numel, generator=gen) > 0.2
        keep = alive & (torch.rand(pr.numel, generator=gen) > 0.4)
        pr._set_mask(WeightMask(dict(zip(pr.names, pr._flat_views(alive.clone())))))
        with torch.no_grad():
            for p in pr.params.values():
                for t in (p, opt.state[p]["exp_avg"]):
                    v = torch.randn(t.shape, generator=gen, dtype=dtype)
                    v[torch.rand(t.shape, generator=gen) < 0.2] = -0.0
                    v[torch.rand(t.shape, generator=gen) < 0.1] = 0.0
                    t.copy_(v)
        n_keep = int(keep.sum())
        mask = WeightMask(dict(zip(pr.names, pr._flat_views(keep))))
        old = pruning.SWAP_FAST_PATH
        pruning.SWAP_FAST_PATH = fast
        try:
            pr._swap_pruned(mask, keep, n_keep)
        finally:
            pruning.SWAP_FAST_PATH = old
        if fast and dtype == torch.float32:  # the float mask is the new one, for the next update
            assert pr._fkeep_owner is pr.mask
            assert torch.equal(pr._scratch("keep"), keep.float())
        assert pr._kept == (pr.mask, n_keep) and pr._alive_flat() is keep
        results.append((pr, opt))
    (pa, oa), (pb, ob) = results
    assert any(bool((_bits(p) == _bits(torch.tensor(-0.0, dtype=dtype))).any())
               for p in pa.params.values())  # fmt: skip
    for n in pa.names:
        assert torch.equal(pa.mask[n], pb.mask[n])
        a, b = pa.params[n].detach(), pb.params[n].detach()
        assert torch.equal(_bits(a), _bits(b)), n
        for key in ("exp_avg", "exp_avg_sq"):
            sa, sb = oa.state[pa.params[n]][key], ob.state[pb.params[n]][key]
            assert torch.equal(_bits(sa), _bits(sb)), key
        assert bool((a[~pa.mask[n]] == 0).all())


def test_swap_pruned_falls_back_to_set_mask_before_the_state_is_fixed(
    two_linear_encoder: type[torch.nn.Module],
) -> None:
    """A parameter with optimizer state that masked training has not fixed yet needs the full
    fix (second moments too): `_swap_pruned` then takes `set_mask`, which checks revivals."""
    pr, opt = _primed(two_linear_encoder, torch.float32)
    p0 = next(iter(pr.params.values()))
    pr.masked._fixed.discard(id(p0))
    keep = pr._alive_flat().clone()
    keep[::3] = False
    calls: list[int] = []
    set_mask = pr.masked.set_mask
    pr.masked.set_mask = lambda mask: calls.append(1) or set_mask(mask)
    pr._swap_pruned(WeightMask(dict(zip(pr.names, pr._flat_views(keep)))), keep, int(keep.sum()))
    assert calls == [1] and id(p0) in pr.masked._fixed
    assert float(opt.state[p0]["exp_avg_sq"][~pr.mask[pr.names[0]]].min()) == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("guard", [0.0, 0.2])
def test_select_flat_with_the_known_count_is_the_same_selection(
    dtype: torch.dtype, guard: float
) -> None:
    """Ties at the threshold (scores on a coarse grid), pruned entries at +0.0 and -0.0, a buffer
    large enough for the bracketed path: `n_alive` given or counted, the same keep-vector."""
    gen = torch.Generator().manual_seed(3)
    n = pruning.SAMPLED_SELECTION_MIN * 2 + 37
    flat = torch.randint(0, 200, (n,), generator=gen).to(dtype) / 8
    alive = torch.rand(n, generator=gen) > 0.3
    flat[~alive] = 0.0
    flat[torch.nonzero(~alive).flatten()[::2]] = -0.0
    sizes = [n // 3, n // 3, n - 2 * (n // 3)]
    names = ["a", "b", "c"]
    c = int(alive.sum())
    for n_keep in (c // 2, c - 1, c):
        want = select_flat(flat, sizes, names, n_keep, alive, min_density=guard, dead_zero=True,
                           warn=False)  # fmt: skip
        got = select_flat(flat, sizes, names, n_keep, alive, min_density=guard, dead_zero=True,
                          warn=False, n_alive=c)  # fmt: skip
        assert torch.equal(got, want) and int(got.sum()) == n_keep
        assert not bool((got & ~alive).any())
        thr = flat[got].min()
        assert bool(((flat == thr) & alive & ~got).any()) or n_keep == c  # ties split


@pytest.mark.parametrize("bad", [True, -1, 10**9, 3.0, "5"])
def test_select_flat_rejects_a_bad_n_alive(bad: object) -> None:
    flat = torch.arange(10, dtype=torch.float32)
    alive = torch.ones(10, dtype=torch.bool)
    with pytest.raises(ValueError, match="n_alive"):
        select_flat(flat, [10], ["w"], 5, alive, n_alive=bad)  # type: ignore[arg-type]


def test_select_flat_rejects_n_alive_without_alive() -> None:
    with pytest.raises(ValueError, match="n_alive"):
        select_flat(torch.arange(10.0), [10], ["w"], 5, None, n_alive=10)
