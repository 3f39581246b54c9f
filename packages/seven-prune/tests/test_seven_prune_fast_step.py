"""The cheap pruner step (issue 17 point 3) changes no result: the sample-bracketed threshold is the
exact k-th smallest, and SEVEN's eager update (torch's fused Adam kernel for the moments and the
ratio, the masking folded in) equals the official formula to float64 rounding and picks its masks
in float32."""

import math
import warnings

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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ties", [False, True])
def test_sort_threshold_equals_kthvalue(dtype: torch.dtype, ties: bool) -> None:
    """_kth_by_sort (the GPU buffers' path, run here on a CPU tensor) returns torch.kthvalue's k-th
    smallest of the alive entries, with ties and a run of zeros, at both ends and inside."""
    flat, alive = _scores(20_000, 1, ties)
    flat = flat.to(dtype)
    for mask in (None, alive):
        vals = flat if mask is None else flat[mask]
        n_alive = vals.numel()
        for k in (1, 2, n_alive // 7, n_alive // 2, n_alive - 1, n_alive):
            ref = float(torch.kthvalue(vals, k).values)
            assert pruning._kth_by_sort(flat, mask, k, n_alive) == ref, (k, mask is None)


def test_segment_counts_torch_equals_the_per_segment_counts() -> None:
    """`_segment_counts_torch` (the one-copy count for GPU buffers, run here on a CPU tensor) gives
    numpy's count of every segment, with segments of one entry, empty of True, and full."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(10_000, generator=g) > 0.6
    x[100:300] = False
    x[300:400] = True
    segs = [(0, 1), (1, 100), (100, 300), (300, 400), (400, 401), (401, 10_000)]
    want = [int(np.count_nonzero(x[a:b].numpy())) for a, b in segs]
    assert want[2] == 0 and want[3] == 100
    assert pruning._segment_counts_torch(x, segs) == want
    assert pruning._segment_counts(x, segs) == want
    assert pruning._segment_counts_torch(x, []) == []


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


U64 = 2.0**-53  # float64 unit roundoff


def _official_update(st, ws, gs, keeps, k, a1, a2, eps, cutting, abs_moments):
    """The official SEVEN code's update of every target, one operation at a time in its order,
    then S[M == 0] <- 0 on a cut step; `st` also carries "m_abs" and "S_abs", the same sums with
    the moments of |g| (they bound the rounding of the signed-moment sums)."""
    bc1, bc2 = 1 - a1 ** (k + 1), 1 - a2 ** (k + 1)
    for i, (w, g, keep) in enumerate(zip(ws, gs, keeps)):
        g_m = g.abs() if abs_moments else g
        st["m"][i] = a1 * st["m"][i] + (1 - a1) * g_m
        st["m_abs"][i] = a1 * st["m_abs"][i] + (1 - a1) * g.abs()
        st["v"][i] = a2 * st["v"][i] + (1 - a2) * g**2
        den = torch.sqrt(st["v"][i] / bc2) + eps
        st["S"][i] = st["S"][i] + torch.abs(w * g * (st["m"][i] / bc1) / den)
        st["S_abs"][i] = st["S_abs"][i] + torch.abs(w * g * (st["m_abs"][i] / bc1) / den)
        if cutting:
            for key in ("S", "S_abs"):
                st[key][i] = torch.where(keep, st[key][i], 0.0)


def _zero_state(shapes, dtype):
    keys = ("m", "v", "S", "m_abs", "S_abs")
    return {key: [torch.zeros(sh, dtype=dtype) for sh in shapes] for key in keys}


@pytest.mark.parametrize("moments", ["abs", "signed"])
@pytest.mark.parametrize("fused_adam", [True, False])
def test_eager_update_equals_the_official_formula_in_float64(
    moments: str, fused_adam: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The eager update (`_seven_update_eager`: torch's fused Adam kernel for the moments and the
    ratio, or its op-by-op fallback) in float64 against the official formula one operation at a
    time, over K = 8 updates, cuts on every 3rd (the mask shrinks after each), pruned entries with
    and without gradients.

    The tolerance comes from float64 rounding (u = 2^-53). All magnitudes are sums and products of
    non-negative numbers once the moments are taken of |g|: over k updates a moment carries at most
    3k roundings, the bias corrections, square root, eps, division and products a few more, and the
    accumulated S one per update, so each side's error is below (5.5 K + 8) u times the same sum
    taken with the moments of |g| (S_abs, = S for abs moments; with signed moments m may cancel,
    and only this absolute bound holds). Twice that is below 16 K u S_abs for K >= 3."""
    if fused_adam and not seven._fused_adam_runs(torch.device("cpu"), torch.float64):
        pytest.skip("torch._fused_adam_ does not run on this torch build")
    if not fused_adam:
        monkeypatch.setitem(seven._FUSED_ADAM, ("cpu", torch.float64), False)
    gen = torch.Generator().manual_seed(11)
    shapes = [(7, 12), (5, 16), (40,)]
    a1, a2, eps, K = 0.8, 0.9, 1e-9, 8
    new = {key: [torch.zeros(sh, dtype=torch.float64) for sh in shapes] for key in "mvS"}
    ref = _zero_state(shapes, torch.float64)
    t1s = [torch.empty(sh, dtype=torch.float64) for sh in shapes]
    t2s = [torch.full(sh, 7.5, dtype=torch.float64) for sh in shapes]  # any finite: cleared
    keeps = [torch.ones(sh, dtype=torch.bool) for sh in shapes]
    for k in range(K):
        cutting = k % 3 == 2
        ws = [torch.randn(sh, generator=gen, dtype=torch.float64) * 0.05 for sh in shapes]
        gs = [torch.randn(sh, generator=gen, dtype=torch.float64) * 1e-3 for sh in shapes]
        gs[0] = gs[0] * keeps[0]  # as under masked training: pruned entries get no gradient
        gs[1][0] = 0.0  # a row without gradient
        w_before = [w.clone() for w in ws]
        _official_update(ref, ws, gs, keeps, k, a1, a2, eps, cutting, moments == "abs")
        seven._seven_update_eager(
            new["m"],
            new["v"],
            new["S"],
            ws,
            gs,
            keeps,
            t1s,
            t2s,
            alpha1=a1,
            alpha2=a2,
            eps=eps,
            k=k,
            abs_moments=moments == "abs",
            cutting=cutting,
            rezero_on_cut=k % 2 == 0,
        )
        for i in range(len(shapes)):
            bound = 16 * K * U64
            assert ((new["S"][i] - ref["S"][i]).abs() <= bound * ref["S_abs"][i]).all(), (k, i)
            assert ((new["m"][i] - ref["m"][i]).abs() <= bound * ref["m_abs"][i]).all(), (k, i)
            torch.testing.assert_close(new["v"][i], ref["v"][i], rtol=bound, atol=0.0)
            if cutting:
                assert bool((new["S"][i][~keeps[i]] == 0).all())
            rezeroed = not cutting or k % 2 == 0
            assert torch.equal(ws[i], w_before[i] * keeps[i] if rezeroed else w_before[i])
        if cutting:  # a cut: drop a random third of the kept entries
            keeps = [kp & (torch.rand(kp.shape, generator=gen) > 0.33) for kp in keeps]
    assert seven._FUSED_ADAM[("cpu", torch.float64)] is fused_adam
    assert all(bool((s > 0).any()) for s in new["S"])


def test_eager_update_picks_the_official_formulas_masks_on_a_tiny_bert() -> None:
    """In float32, on a tiny BERT trained with real gradients (AdamW, masked training), every cut
    of SevenPruner equals the cut on the official formula's scores (one operation at a time, same
    weights and gradients), and m, v, S agree to float32 rounding.

    The reassociated float32 arithmetic can flip the order of two scores closer than its rounding
    (about 1e-6 relative): the test asserts that no cut here has such a near-tie at its threshold
    (the gap between the last pruned and the first kept score exceeds 4x the largest relative
    difference of S times the threshold), so the masks must agree; on real runs a flip of such a near-tie swaps two weights whose
    scores agree to float32 rounding."""
    from seven_prune.models import tiny_bert

    torch.manual_seed(0)
    model = tiny_bert(seed=3)
    pr = SevenPruner(model, 0.7, start=1, window=12, delta_t=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    params = list(pr.params.values())
    ref = _zero_state([p.shape for p in params], torch.float32)
    gen = torch.Generator().manual_seed(4)
    cuts = 0
    for t in range(1 + pr.last_k + 2):
        ids = torch.randint(0, 64, (8, 12), generator=gen)
        labels = torch.randint(0, 2, (8,), generator=gen)
        opt.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        k = t - pr.start
        if 0 <= k <= pr.last_k:
            ws = [p.detach().clone() for p in params]
            gs = [p.grad.clone() for p in params]
            keeps = [pr.mask[n].clone() for n in pr.names]
            alive = torch.cat([kp.reshape(-1) for kp in keeps])
            cutting = (k + 1) % pr.delta_t == 0 or k == pr.last_k
            _official_update(ref, ws, gs, keeps, k, 0.8, 0.9, 1e-9, cutting, True)
        pr.step()
        if not 0 <= k <= pr.last_k:
            continue
        flat_ref = torch.cat([x.reshape(-1) for x in ref["S"]])
        for key in ("m", "v", "S"):
            got = torch.cat([x.reshape(-1) for x in pr.state[key]])
            want = torch.cat([x.reshape(-1) for x in ref[key]])
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-12)
        if cutting:
            cuts += 1
            n_keep = pr.final_keep if k == pr.window - 1 else pr.n_keep(k)
            want = pruning.select_flat(
                flat_ref, pr.sizes, pr.names, n_keep, alive, min_density=0.01, warn=False
            )
            got = torch.cat([pr.mask[n].reshape(-1) for n in pr.names])
            assert torch.equal(got, want), k
            alive_scores = torch.sort(flat_ref[alive]).values
            n_prune = int(alive.sum()) - n_keep
            lo, hi = float(alive_scores[n_prune - 1]), float(alive_scores[n_prune])
            rel = float(((pr.flat["S"] - flat_ref).abs() / flat_ref.clamp_min(1e-30))[alive].max())
            assert hi - lo > 4 * rel * hi, (k, lo, hi, rel)  # no near-tie at the threshold
        for name, p in pr.params.items():
            assert bool((p.detach()[~pr.mask[name]] == 0).all()), (k, name)
    assert cuts == 6 and 0.6 < pr.achieved_sparsity <= 0.7


def test_fused_update_equals_the_eager_update_with_masking(
    monkeypatch: pytest.MonkeyPatch, two_linear_encoder: type[nn.Module]
) -> None:
    """fused=True (one compiled pass per target, masking folded in) gives the eager path's m, v, S
    to float rounding, the same masks, and exactly-zero pruned weights, with a cut every step;
    it compiles once (under error_on_recompile a recompile would fail the step).

    The model is the conftest's two-target encoder in float64 with the pruner unhooked: the graph
    `test_fused_update_honours_the_optimizer_hook_exactly_in_float64` compiles for its unhooked
    run, so that test can find this compilation in inductor's graph cache (one cold compilation less
    per session)."""
    torch._dynamo.reset()
    monkeypatch.setattr(seven, "_KERNEL", None)
    torch.manual_seed(0)
    model = two_linear_encoder().double()
    eager = SevenPruner(model, 0.6, start=0, window=6, targets=r"encoder\.", min_density=0.0)
    fused = SevenPruner(
        two_linear_encoder().double(), 0.6, start=0, window=6, targets=r"encoder\.",
        min_density=0.0,
    )  # fmt: skip
    fused.fused = True
    for pa, pb in zip(eager.params.values(), fused.params.values()):
        with torch.no_grad():
            pb.copy_(pa)  # both start from the same weights
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
                    p.add_(d)
                p.grad = g.clone()
            with recompile_is_an_error:
                pr.step()
        assert fused.mask == eager.mask
        for key in ("m", "v", "S"):
            torch.testing.assert_close(fused.flat[key], eager.flat[key], rtol=1e-5, atol=1e-7)
        for name, p in fused.params.items():
            assert bool((p.detach()[~fused.mask[name]] == 0).all()), name


def test_fused_without_a_compiler_runs_the_eager_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """fused=True where torch.compile fails (e.g. no C++ compiler) warns once and from then on runs
    the eager default: m, v, S, masks and weights bit for bit those of fused=False, cuts included."""

    def no_compiler(*args: object) -> None:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(seven, "_KERNEL", no_compiler)  # as torch.compile's result failing
    torch.manual_seed(0)
    eager = SevenPruner(Enc(), 0.6, start=0, window=6, delta_t=2, targets=r"encoder\.")
    torch.manual_seed(0)
    fused = SevenPruner(Enc(), 0.6, start=0, window=6, delta_t=2, targets=r"encoder\.", fused=True)
    gen = torch.Generator().manual_seed(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(6):
            noise = [torch.randn(p.shape, generator=gen) * 0.1 for p in eager.params.values()]
            grads = [torch.randn(p.shape, generator=gen) for p in eager.params.values()]
            for pr in (eager, fused):
                for (name, p), d, g in zip(pr.params.items(), noise, grads):
                    with torch.no_grad():
                        p.add_(d)
                    p.grad = g * pr.mask[name]  # as masked training leaves it
                pr.step()
            assert seven._KERNEL is False
            assert fused.mask == eager.mask
            for key in ("m", "v", "S"):
                assert torch.equal(fused.flat[key], eager.flat[key]), key
            for pa, pb in zip(eager.params.values(), fused.params.values()):
                assert torch.equal(pa, pb)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1 and "runs eagerly" in str(runtime[0].message)
    assert 0.55 < fused.achieved_sparsity <= 0.6


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("min_density", [0.0, 0.05])
def test_dead_zero_selection_equals_the_alive_selection(scope: str, min_density: float) -> None:
    """select_flat(dead_zero=True) (the comparison with the threshold without the alive-vector, as
    at a gradual pruner's cut, whose pruned scores are 0) equals the selection with it: large buffers
    (the sampled threshold), exact ties, alive entries scored 0, a nearly empty tensor (the guard);
    and a negative score turns the shortcut off without changing the result."""
    g = torch.Generator().manual_seed(3)
    sizes, names = [90_000, 30_000, 4096], ["a", "b", "c"]
    flat = torch.round(torch.rand(sum(sizes), generator=g) ** 2 * 300) / 300  # ties, zeros
    flat[120_000:] *= 1e-4  # "c": tiny scores, the guard lifts it
    alive = torch.rand(flat.numel(), generator=g) > 0.4
    alive[120_000:122_000] = False
    flat[~alive] = 0.0
    n_alive = int(alive.sum())
    for n_keep in (n_alive - 5, n_alive // 2, n_alive // 9):
        kw = dict(scope=scope, min_density=min_density, warn=False)
        want = pruning.select_flat(flat, sizes, names, n_keep, alive, **kw)
        got = pruning.select_flat(flat, sizes, names, n_keep, alive, dead_zero=True, **kw)
        assert torch.equal(got, want), n_keep
        if scope == "global":  # (per layer, a tensor with fewer alive than its share revives some)
            assert int(got.sum()) == n_keep and not bool((got & ~alive).any())
    neg = flat.clone()
    neg[alive.nonzero()[0]] = -1.0  # one alive negative score: the shortcut must not be taken
    want = pruning.select_flat(neg, sizes, names, n_alive // 2, alive, warn=False)
    got = pruning.select_flat(neg, sizes, names, n_alive // 2, alive, dead_zero=True, warn=False)
    assert torch.equal(got, want)


def test_optimizer_hook_makes_the_re_zeroing_pass_unneeded(monkeypatch: pytest.MonkeyPatch) -> None:
    """With optimizer= (AdamW hooked by masked training) the pruner skips re-zeroing the weights
    after a step (re-applied only by the cuts' new masks), and every pruned weight is still exactly
    0 after every step; without it, every step re-zeroes."""
    from seven_prune.models import tiny_bert

    rezero_flags: list[bool] = []
    eager = seven._seven_update_eager

    def spy(*args: object, **kw: object) -> None:
        rezero_flags.append(bool(kw["rezero"]))
        eager(*args, **kw)

    monkeypatch.setattr(seven, "_seven_update_eager", spy)
    for hooked in (True, False):
        rezero_flags.clear()
        torch.manual_seed(0)
        model = tiny_bert(seed=3)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        pr = SevenPruner(
            model, 0.7, start=1, window=8, delta_t=2, optimizer=opt if hooked else None
        )
        assert pr.masked.holds_zeros is hooked
        reapplied: list[None] = []
        monkeypatch.setattr(  # every re-zeroing pass (`reapply()` and the cut's swap) runs it
            pr.masked, "reapply", lambda f=pr.masked.reapply, out=reapplied: out.append(f())
        )
        gen = torch.Generator().manual_seed(4)
        for _ in range(10):
            ids = torch.randint(0, 64, (8, 12), generator=gen)
            labels = torch.randint(0, 2, (8,), generator=gen)
            opt.zero_grad(set_to_none=True)
            model(input_ids=ids, labels=labels).loss.backward()
            opt.step()
            pr.step()
            for name, p in pr.params.items():
                assert bool((p.detach()[~pr.mask[name]] == 0).all()), name
        cuts = 4  # updates k = 1, 3, 5 and the last (k = 6)
        assert rezero_flags == [not hooked] * 7
        # hooked: only the cuts' set_mask re-applies; otherwise also the 3 steps out of the window
        assert len(reapplied) == (cuts if hooked else cuts + 3)
        assert 0.6 < pr.achieved_sparsity <= 0.7


def _bits(x: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (so that +0.0 and -0.0 differ)."""
    return x.view(torch.int64 if x.dtype == torch.float64 else torch.int32)


@pytest.mark.parametrize("moments", ["abs", "signed"])
def test_float_mask_multiply_equals_the_uint8_one_bit_for_bit_in_float64(moments: str) -> None:
    """`_seven_update_eager(fkeeps=...)` (the masks as 0/1 floats, multiplied without the cast
    copy) gives m, v, S and the re-zeroed weights bit for bit as the bool masks' uint8 view does
    (the signs of zeros included: negative pruned weights become -0.0 both ways), over updates
    with and without cuts, the mask shrinking, in float64."""
    gen = torch.Generator().manual_seed(21)
    shapes = [(7, 12), (5, 16), (40,)]
    runs = {
        key: {s: [torch.zeros(sh, dtype=torch.float64) for sh in shapes] for s in "mvS"}
        for key in ("uint8", "float")
    }
    scratch = {key: ([torch.empty(sh, dtype=torch.float64) for sh in shapes],
                     [torch.full(sh, 7.5, dtype=torch.float64) for sh in shapes])
               for key in runs}  # fmt: skip
    keeps = [torch.ones(sh, dtype=torch.bool) for sh in shapes]
    for k in range(8):
        cutting = k % 3 == 2
        ws = [torch.randn(sh, generator=gen, dtype=torch.float64) * 0.05 for sh in shapes]
        gs = [torch.randn(sh, generator=gen, dtype=torch.float64) * 1e-3 for sh in shapes]
        gs = [g * kp for g, kp in zip(gs, keeps)]  # masked training: pruned entries get none
        out = {}
        for key, st in runs.items():
            w_run = [w.clone() for w in ws]
            fkeeps = [kp.to(torch.float64) for kp in keeps] if key == "float" else None
            seven._seven_update_eager(
                st["m"], st["v"], st["S"], w_run, gs, keeps, *scratch[key],
                alpha1=0.8, alpha2=0.9, eps=1e-9, k=k, abs_moments=moments == "abs",
                cutting=cutting, rezero_on_cut=k % 2 == 0, fkeeps=fkeeps,
            )  # fmt: skip
            out[key] = w_run
        for i in range(len(shapes)):
            for s in "mvS":
                assert torch.equal(_bits(runs["float"][s][i]), _bits(runs["uint8"][s][i])), (k, s)
            assert torch.equal(_bits(out["float"][i]), _bits(out["uint8"][i])), (k, i)
        if cutting:
            keeps = [kp & (torch.rand(kp.shape, generator=gen) > 0.33) for kp in keeps]
    assert any(bool(torch.signbit(w[w == 0]).any()) for w in out["float"])  # -0.0 met


def test_seven_pruner_float_mask_changes_no_bit_of_a_run() -> None:
    """SevenPruner on a CPU multiplies by its float copy of the mask (`_float_keep_views`, copied
    again after every cut); a pruner made to use the bool mask's uint8 view instead (as before)
    gives, on the same tiny BERT and batches, the same masks, m, v, S and weights, bit for bit,
    at every step of a window with four cuts, and the float copy is the mask the update used."""
    from seven_prune.models import tiny_bert

    prs, opts, models = [], [], []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(tiny_bert(seed=3))
        opts.append(torch.optim.AdamW(models[-1].parameters(), lr=1e-2))
        prs.append(SevenPruner(models[-1], 0.7, start=1, window=9, delta_t=2))
    prs[1]._float_keep_views = lambda: None  # the uint8 path
    gen = torch.Generator().manual_seed(4)
    cuts = 0
    for _ in range(12):
        ids = torch.randint(0, 64, (8, 12), generator=gen)
        labels = torch.randint(0, 2, (8,), generator=gen)
        before = prs[0].mask
        for model, opt, pr in zip(models, opts, prs):
            opt.zero_grad(set_to_none=True)
            model(input_ids=ids, labels=labels).loss.backward()
            opt.step()
            pr.step()
        cuts += prs[0].mask is not before
        assert prs[0].mask == prs[1].mask
        if prs[0].state:
            for key in ("m", "v", "S"):
                assert torch.equal(_bits(prs[0].flat[key]), _bits(prs[1].flat[key])), key
        for (name, pa), pb in zip(prs[0].params.items(), prs[1].params.values()):
            assert torch.equal(_bits(pa.detach()), _bits(pb.detach())), name
        if "keep" in prs[0]._scratch_bufs:  # the copy this step's update used: the mask before
            used = torch.cat([before[n].reshape(-1) for n in prs[0].names])
            assert torch.equal(prs[0]._scratch_bufs["keep"], used.float())  # 0.0 / 1.0 exactly
    assert cuts == 4 and "keep" not in prs[0]._scratch_bufs  # freed after the window
    assert "keep" not in prs[1]._scratch_bufs
    assert 0.6 < prs[0].achieved_sparsity <= 0.7


def _sort_reference(flat: torch.Tensor, alive: torch.Tensor | None, n_keep: int) -> torch.Tensor:
    """WeightMask.from_scores' rule by a stable sort: pruned entries at -inf, the lowest go first,
    among equal scores the earlier entry."""
    work = flat if alive is None else flat.masked_fill(~alive, -math.inf)
    order = torch.argsort(work, stable=True)
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order[: flat.numel() - n_keep]] = False
    return keep


@pytest.mark.parametrize("seed", range(3))
def test_cut_selection_equals_the_stable_sort_in_float64(seed: int) -> None:
    """The cut's selection (a threshold from the sample-bracketed partial selection) keeps exactly
    the entries a stable sort keeps, bit for bit, in float64: many exact ties, alive entries scored
    0, pruned entries at 0 (a gradual pruner's cut, dead_zero), thresholds from the lowest rank to
    the highest; and float64 scores that float32 cannot tell apart (the threshold was taken in
    float32 before, which kept the wrong ones)."""
    g = torch.Generator().manual_seed(seed)
    n = 120_000
    assert n >= pruning.SAMPLED_SELECTION_MIN
    flat = torch.round(torch.rand(n, generator=g, dtype=torch.float64) ** 3 * 400) / 400
    flat[flat < 0.002] = 0.0  # alive entries scored exactly 0
    flat[n // 2 : n // 2 + 5000] = 1.0 + torch.arange(5000, dtype=torch.float64) * 1e-12
    assert torch.unique(flat[n // 2 : n // 2 + 5000].float()).numel() < 5000  # float32 merges them
    alive = torch.rand(n, generator=g) > 0.3
    flat[~alive] = 0.0
    n_alive = int(alive.sum())
    n_zero_alive = int((alive & (flat == 0)).sum())
    near_one = int((alive & (flat < 1.0)).sum())  # ranks inside the run of near-equal values
    for n_keep in (
        n_alive - 1,
        n_alive - 7,
        n_alive - n_zero_alive // 2,  # the threshold is 0: the zeros tie
        n_alive - n_zero_alive - 3,  # just above the zeros
        n_alive - near_one - 1234,
        n_alive // 2,
        n_alive // 10,
        1,
    ):
        want = _sort_reference(flat, alive, n_keep)
        got = pruning.select_flat(flat, [n], ["a"], n_keep, alive, dead_zero=True, warn=False)
        assert torch.equal(got, want), n_keep
        plain = flat.clone()
        plain[~alive] = -0.5  # no previous mask: every entry ranked, negatives included
        want = _sort_reference(plain, None, n_keep)
        got = pruning.select_flat(plain, [n], ["a"], n_keep, warn=False)
        assert torch.equal(got, want), n_keep


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cut_fast_path_equals_the_general_path_exactly(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_keep_top_bracketed` (a gradual pruner's cut: pruned scores 0, alive ones >= 0, or no
    pruned entry) gives the keep-vector of the general path (`CUT_FAST_PATH` off: threshold by
    `_kth_bracketed`, then the comparison), bit for bit, with many ties, alive entries scored 0,
    ranks from the lowest to the highest; it answers on most of them (the rest fall back), and
    the bracket it records holds the indices of the bools the general path records; work buffers
    holding stale values change nothing. The guard (with its re-selection from the recorded
    bracket) agrees too, and the scores come back."""
    g = torch.Generator().manual_seed(7)
    n = 130_000
    flat = torch.round(torch.rand(n, generator=g, dtype=dtype) ** 2 * 300) / 300
    flat[flat < 0.003] = 0.0  # alive entries scored exactly 0
    alive = torch.rand(n, generator=g) > 0.4
    flat[-900:] *= 1e-3  # two small tensors at the end that the guard lifts
    dead = flat.masked_fill(~alive, 0.0)
    n_alive = int(alive.sum())
    calls: list[bool] = []
    real = pruning._keep_top_bracketed

    def spy(*args: object) -> torch.Tensor | None:
        out = real(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(pruning, "_keep_top_bracketed", spy)
    for buf, al, na in ((dead, alive, n_alive), (flat - 0.25, None, n)):
        for n_keep in (na - 1, na - 50, na - na // 3, na // 2, na // 7, 3):
            got: list[object] = []
            want: list[object] = []
            work = (torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool))  # stale
            keep = pruning._keep_top_flat(buf, al, n_keep, al is not None, got, work)
            monkeypatch.setattr(pruning, "CUT_FAST_PATH", False)
            ref = pruning._keep_top_flat(buf, al, n_keep, al is not None, want)
            monkeypatch.setattr(pruning, "CUT_FAST_PATH", True)
            assert torch.equal(keep, ref), (al is None, n_keep)
            assert int(keep.sum()) == n_keep
            if got and got[0].dtype != np.bool_:
                assert np.array_equal(got[0], np.flatnonzero(want[0]))
            sizes, names = [n - 900, 600, 300], ["a", "b", "c"]
            for fast in (True, False) if n_keep >= na // 7 else ():
                monkeypatch.setattr(pruning, "CUT_FAST_PATH", fast)
                before = buf.clone()
                guarded = pruning.select_flat(
                    buf, sizes, names, n_keep, al, min_density=0.02, warn=False,
                    dead_zero=al is not None,
                )  # fmt: skip
                assert torch.equal(buf, before)
                if fast:
                    first = guarded
                else:
                    assert torch.equal(first, guarded), (al is None, n_keep)
            monkeypatch.setattr(pruning, "CUT_FAST_PATH", True)
    assert sum(calls) >= 8  # the fast path answered most selections


@pytest.mark.parametrize("fused_adam", [True, False])
@pytest.mark.parametrize(
    ("state_dtype", "param_dtype"),
    [
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
        (torch.float32, torch.float64),
    ],
)
def test_update_reading_one_buffer_less_changes_no_bit(
    fused_adam: bool,
    state_dtype: torch.dtype,
    param_dtype: torch.dtype,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The eager update's order for moments of |g| that writes the ratio over |g|
    (`_aliased_ratio_ok`) leaves m, v, S and the weights bit for bit as the previous order (the
    ratio in its own buffer) over six steps with cuts and re-zeroing, on tensors with vectorised
    bodies, scalar tails and more than one thread's chunk, with torch's fused AdamW kernel and
    with the one-operation-at-a-time fallback."""
    if fused_adam and not seven._fused_adam_runs(torch.device("cpu"), state_dtype):
        pytest.skip("torch's fused AdamW kernel does not run here")
    if not fused_adam:
        monkeypatch.setitem(seven._FUSED_ADAM, ("cpu", state_dtype), False)
    monkeypatch.setattr(seven, "_ALIASED_RATIO", {})
    assert seven._aliased_ratio_ok(torch.device("cpu"), state_dtype)
    gen = torch.Generator().manual_seed(11)
    shapes = [(317, 331), (7, 13), (3,)]
    ws0 = [torch.randn(sh, generator=gen, dtype=param_dtype) for sh in shapes]
    runs = {}
    for aliased in (True, False):
        monkeypatch.setitem(seven._ALIASED_RATIO, ("cpu", state_dtype), aliased)
        g2 = torch.Generator().manual_seed(5)
        ws = [w.clone() for w in ws0]
        st = {k: [torch.zeros(sh, dtype=state_dtype) for sh in shapes] for k in "mvS"}
        t1s = [torch.zeros(sh, dtype=state_dtype) for sh in shapes]
        t2s = [torch.zeros(sh, dtype=state_dtype) for sh in shapes]
        keeps = [torch.ones(sh, dtype=torch.bool) for sh in shapes]
        for k in range(6):
            gs = [torch.randn(sh, generator=g2, dtype=param_dtype) for sh in shapes]
            gs[0][::5] = 0.0
            cutting = k % 2 == 1
            seven._seven_update_eager(
                st["m"], st["v"], st["S"], ws, gs, keeps, t1s, t2s, alpha1=0.8, alpha2=0.9,
                eps=1e-9, k=k, abs_moments=True, cutting=cutting, rezero=k != 4,
            )  # fmt: skip
            if cutting:
                keeps = [kp & (torch.rand(kp.shape, generator=g2) > 0.3) for kp in keeps]
        runs[aliased] = (st, ws)
    for key in "mvS":
        for a, b in zip(runs[True][0][key], runs[False][0][key]):
            assert torch.equal(_bits(a), _bits(b)), key
    for a, b in zip(runs[True][1], runs[False][1]):
        assert torch.equal(_bits(a), _bits(b))
    assert float(runs[True][0]["S"][0].sum()) > 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_narrower_bracket_changes_no_keep_vector(
    dtype: torch.dtype, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bracket's margin (`BRACKET_SDS`, 4 binomial standard deviations since session 21, 6
    before) only decides speed: `select_flat`'s keep-vectors (a gradual pruner's cut with
    `dead_zero`, alive entries scored 0, ties; unguarded and with the guard and its re-selection
    from the bracket) are those of the old margin and, unguarded, of a stable sort; on a buffer
    whose strided sample is biased (every 2nd entry, the sampled ones, halved) the bracket misses
    on either side at any margin and the fallback gives them too; the scores come back."""
    g = torch.Generator().manual_seed(11)
    n = 140_000  # the sample: every 2nd entry
    flat = torch.round(torch.rand(n, generator=g, dtype=dtype) ** 2 * 30000) / 30000
    flat[flat < 0.003] = 0.0  # alive entries scored exactly 0
    flat[-900:] *= 1e-3  # two small tensors at the end that the guard lifts
    alive = torch.rand(n, generator=g) > 0.4
    flat[~alive] = 0.0
    biased = flat.clone()
    biased[::2] *= 0.5  # the sample sees only the halved entries: its quantile is too low
    n_alive = int(alive.sum())
    sizes, names = [n - 900, 600, 300], ["a", "b", "c"]
    hits: dict[tuple[int, float], list[bool]] = {}
    new_sds = pruning.BRACKET_SDS
    assert new_sds == 4.0
    real = pruning._keep_top_bracketed
    which = [0]

    def spy(*args: object) -> torch.Tensor | None:
        out = real(*args)
        hits.setdefault((which[0], pruning.BRACKET_SDS), []).append(out is not None)
        return out

    monkeypatch.setattr(pruning, "_keep_top_bracketed", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    lifted = 0
    try:
        for which[0], buf in enumerate((flat, biased)):
            for n_keep in (n_alive - 1, n_alive - n_alive // 3, n_alive // 9, 3000):
                want = _sort_reference(buf, alive, n_keep)
                got: dict[float, list[torch.Tensor]] = {}
                for sds in (6.0, new_sds, 0.25):
                    monkeypatch.setattr(pruning, "BRACKET_SDS", sds)
                    bits = buf.clone()
                    work = (torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool))
                    got[sds] = [
                        pruning.select_flat(
                            buf,
                            sizes,
                            names,
                            n_keep,
                            alive,
                            min_density=md,
                            warn=False,
                            dead_zero=True,
                            work=work,
                        )  # fmt: skip
                        for md in (0.0, 0.02)
                    ]
                    assert torch.equal(buf, bits)  # the scores come back (the guard lifts in place)
                for sds, (plain, guarded) in got.items():
                    assert torch.equal(plain, want), (which[0], sds, n_keep)
                    assert torch.equal(guarded, got[6.0][1]), (which[0], sds, n_keep)
                lifted += not torch.equal(got[6.0][0], got[6.0][1])
    finally:
        torch.set_num_threads(before)
    assert any(hits[0, 4.0]) and not any(hits[1, 4.0])  # answered; missed on the biased sample
    assert lifted  # the guard lifted tensors (and re-selected from the bracket)
