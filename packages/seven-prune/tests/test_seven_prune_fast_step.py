"""The cheap pruner step (issue 17 point 3) changes no result: the sample-bracketed threshold is the
exact k-th smallest, and SEVEN's per-target update (with the masking folded into it) gives bit for
bit the m, v, S, masks and weights of the flat update it replaced."""

import math

import numpy as np
import pytest
import torch
from maskloop import WeightMask
from seven_prune import SevenPruner, pruning, select_global, seven
from torch import nn


def _scores(n: int, seed: int, ties: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    flat = torch.rand(n, generator=g) ** 3
    if ties:  # many exact ties, and a run of zeros
        flat = torch.round(flat * 50) / 50
        flat[n // 3 : n // 3 + n // 10] = 0.0
    alive = torch.rand(n, generator=g) > 0.35
    return flat, alive


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("with_alive", [False, True])
def test_bracketed_threshold_is_the_exact_kth_smallest(
    ties: bool, with_alive: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_kth_bracketed (the fast path) returns numpy's k-th smallest of the alive entries, over k
    from the first to the last; it answers (not None) for ranks away from the ends."""
    monkeypatch.setattr(pruning, "SAMPLE_SIZE", 4096)  # a strided sample, as on real buffers
    flat, alive = _scores(40_000, 0, ties)
    an = alive.numpy() if with_alive else None
    vals = flat.numpy()[an] if with_alive else flat.numpy()
    ref = np.sort(vals)
    n_alive = vals.size
    answered = 0
    for k in (1, 2, 17, n_alive // 100, n_alive // 3, n_alive // 2, n_alive - 300, n_alive):
        got = pruning._kth_bracketed(flat.numpy(), an, k, n_alive)
        if got is not None:
            answered += 1
            assert got == ref[k - 1], k
        assert pruning._kth_smallest(flat, alive if with_alive else None, k, n_alive) == ref[k - 1]
    assert answered >= 5


def test_bracket_miss_falls_back_to_the_full_selection() -> None:
    """A buffer whose strided sample is unrepresentative (every sampled entry is large) makes the
    bracket miss; the result is still exact."""
    n = 1 << 17
    flat = torch.linspace(0.0, 1.0, n)
    step = max(1, n // pruning.SAMPLE_SIZE)
    flat[::step] = 10.0  # the sample sees only 10s
    ref = np.sort(flat.numpy())
    for k in (5, n // 2, n - 5):
        assert pruning._kth_bracketed(flat.numpy(), None, k, n) in (None, ref[k - 1])
        assert pruning._kth_smallest(flat, None, k, n) == ref[k - 1]


@pytest.mark.parametrize("seed", range(3))
def test_large_selection_equals_the_sort_reference(seed: int) -> None:
    """select_global on a buffer above SAMPLED_SELECTION_MIN (ties, a previous mask, the guard)
    equals a selection by a stable sort (WeightMask.from_scores, pruned entries at -inf)."""
    g = torch.Generator().manual_seed(seed)
    scores = {
        "a": torch.round(torch.rand(300, 256, generator=g) * 200) / 200,
        "b": torch.rand(64, 128, generator=g) * 1e-3,  # tiny: the guard lifts it
    }
    prev = WeightMask({n: torch.rand(s.shape, generator=g) > 0.25 for n, s in scores.items()})
    total = sum(s.numel() for s in scores.values())
    assert total >= pruning.SAMPLED_SELECTION_MIN
    alive = sum(int(m.sum()) for _, m in prev.items())
    allflat = torch.cat([scores[n].reshape(-1) for n in scores])
    allflat.masked_fill_(~torch.cat([prev[n].reshape(-1) for n in scores]), -math.inf)
    order = torch.argsort(allflat, stable=True)  # ties: the earlier entry is pruned first
    for n_keep in (alive - 7, alive // 2, alive // 10):
        keep = torch.ones(total, dtype=torch.bool)
        keep[order[: total - n_keep]] = False
        ref = WeightMask({"a": keep[:76800].view(300, 256), "b": keep[76800:].view(64, 128)})
        ours = select_global(scores, n_keep, previous=prev, warn=False)
        assert ours == ref, n_keep
        guarded = select_global(scores, n_keep, previous=prev, min_density=0.05, warn=False)
        assert guarded.numel - guarded.num_pruned == n_keep
        assert int(guarded["b"].sum()) >= min(math.ceil(0.05 * 64 * 128), int(prev["b"].sum()))


class Enc(nn.Module):
    """Three encoder-named Linears (one bigger than a few cache lines) and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([nn.Module()])
        self.encoder.layer[0].query = nn.Linear(16, 12)
        self.encoder.layer[0].dense = nn.Linear(12, 40)
        self.encoder.layer[0].out = nn.Linear(40, 16)
        self.head = nn.Linear(16, 2)


def _flat_reference_step(st, ws, gs, keep, k, a1, a2, eps, cutting):
    """The update as committed before (flat copies of W and g, one op at a time, in float32), then
    S[M == 0] <- 0 on a cut step and W <- W * M."""
    g = torch.cat([x.reshape(-1) for x in gs]).float()
    t1 = torch.cat([x.reshape(-1) for x in ws]).float()
    bc1, bc2 = 1.0 - a1 ** (k + 1), 1.0 - a2 ** (k + 1)
    st["m"].lerp_(g.abs(), 1.0 - a1)
    st["v"].mul_(a2).addcmul_(g, g, value=1.0 - a2)
    t2 = torch.sqrt(st["v"]).mul_(1.0 / math.sqrt(bc2)).add_(eps)
    t1.mul_(g).mul_(st["m"]).abs_()
    st["S"].addcdiv_(t1, t2, value=1.0 / bc1)
    if cutting:
        st["S"].masked_fill_(~keep, 0.0)


def test_eager_update_equals_the_flat_update_bit_for_bit() -> None:
    """SevenPruner's per-target update == the flat update it replaced (torch.equal on m, v, S after
    every step, cut every 2nd step), masks from the same cuts, pruned weights exactly 0."""
    torch.manual_seed(0)
    model = Enc()
    pr = SevenPruner(model, 0.7, start=0, window=9, delta_t=2, targets=r"encoder\.")
    params = list(pr.params.values())
    n = sum(p.numel() for p in params)
    st = {s: torch.zeros(n) for s in ("m", "v", "S")}
    gen = torch.Generator().manual_seed(3)
    for k in range(pr.last_k + 1):
        keep = torch.cat([pr.mask[nm].reshape(-1) for nm in pr.names])
        with torch.no_grad():
            for p in params:  # an optimizer step moves pruned weights off 0 too
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
                p.grad = torch.randn(p.shape, generator=gen) * (1 + k % 3)
        ws = [p.detach().clone() for p in params]
        gs = [p.grad.clone() for p in params]
        cutting = (k + 1) % 2 == 0 or k == pr.last_k
        _flat_reference_step(st, ws, gs, keep, k, 0.8, 0.9, 1e-9, cutting)
        pr.step()
        for s in ("m", "v", "S"):
            assert torch.equal(pr.flat[s], st[s]), (k, s)
        new_keep = torch.cat([pr.mask[nm].reshape(-1) for nm in pr.names])
        if cutting:
            ref = pruning.select_flat(
                st["S"], pr.sizes, pr.names, pr.n_keep(k), keep, min_density=0.01, warn=False
            )
            assert torch.equal(new_keep, ref), k
        else:
            assert torch.equal(new_keep, keep), k
        w_now = torch.cat([p.detach().reshape(-1) for p in params])
        w_ref = torch.cat([w.reshape(-1) for w in ws]) * new_keep
        assert torch.equal(w_now, w_ref), k
    assert abs(pr.achieved_sparsity - 0.7) < 0.05


def test_fused_update_equals_the_eager_update_with_masking(monkeypatch: pytest.MonkeyPatch) -> None:
    """fused=True (one compiled pass per target, masking folded in) gives the eager path's m, v, S
    to float rounding, the same masks, and exactly-zero pruned weights, with a cut every step;
    it compiles once (under error_on_recompile a recompile would fail the step)."""
    torch._dynamo.reset()
    monkeypatch.setattr(seven, "_KERNEL", None)
    torch.manual_seed(0)
    eager = SevenPruner(Enc(), 0.6, start=0, window=6, targets=r"encoder\.", min_density=0.0)
    fused = SevenPruner(Enc(), 0.6, start=0, window=6, targets=r"encoder\.", min_density=0.0)
    fused.fused = True  # built alike (same seed), so both start from the same state
    for pa, pb in zip(eager.params.values(), fused.params.values()):
        with torch.no_grad():
            pb.copy_(pa)
    gen = torch.Generator().manual_seed(5)
    recompile_is_an_error = torch._dynamo.config.patch(error_on_recompile=True)
    for _ in range(6):
        noise = [
            torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in eager.params.values()
        ]
        grads = [
            torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in eager.params.values()
        ]
        for pr in (eager, fused):
            for p, d, g in zip(pr.params.values(), noise, grads):
                with torch.no_grad():
                    p.add_(d.float())
                p.grad = g.float()
            with recompile_is_an_error:
                pr.step()
        assert fused.mask == eager.mask
        for key in ("m", "v", "S"):
            torch.testing.assert_close(fused.flat[key], eager.flat[key], rtol=1e-5, atol=1e-7)
        for name, p in fused.params.items():
            assert bool((p.detach()[~fused.mask[name]] == 0).all()), name
