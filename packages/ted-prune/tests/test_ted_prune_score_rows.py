"""`TEDPruner(score_rows="fresh")`: the products over this epoch's observed rows only.

Not bit-identical to the default "all" (g_T is summed in another order), so the check is a bound:
each float32 path is within gamma_n * A_i of the exact value, A_i = |e_i|^T Gabs |h~_i| with
Gabs = mean_{j in T} |e_j| |h~_j|^T and n = |T| + (D + 1) + C + 2 terms in each sum (the standard
bound for dot products), so the two paths differ by at most twice that; a wrong set of rows in g_T
would be off by O(|a_i|), far above it. Where "fresh" must compute what "all" does (every row
fresh, g_T with unobserved rows), it is bit-identical.
"""

import pytest
import torch
from ted_prune import TEDPruner
from ted_prune.ted import ted_scores

N, C, D = 300, 5, 12
U = 2.0**-24  # float32 unit roundoff


def _batches(seed):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(N, C, generator=g)
    feats = torch.randn(N, D, generator=g).abs()
    labels = torch.randint(0, C, (N,), generator=g)
    return logits, feats, labels


def _observe_epoch(p, rows, logits, feats, labels, batch=32):
    for i in range(0, rows.numel(), batch):
        idx = rows[i : i + batch]
        p.observe(idx, logits[idx], feats[idx], labels[idx])


def _two_epochs(score_rows, every=False, split_write=False):
    """Epoch 0 observes every row; epoch 1 observes its selection (every row with `every`),
    shuffled; returns the pruner just before epoch 1's end_epoch."""
    p = TEDPruner(N, 4, keep=0.5, warmup=1, ramp=0, score_rows=score_rows, seed=0)
    logits, feats, labels = _batches(0)
    p.select(0)
    _observe_epoch(p, torch.randperm(N, generator=torch.Generator().manual_seed(1)), logits, feats,
                   labels)  # fmt: skip
    p.end_epoch()
    logits, feats, labels = _batches(2)  # new observations in epoch 1
    keep_rows = torch.arange(N) if every else p.select(1).indices
    assert keep_rows.numel() < N or every
    order = keep_rows[torch.randperm(keep_rows.numel(), generator=torch.Generator().manual_seed(3))]
    half = order.numel() // 2
    _observe_epoch(p, order[:half], logits, feats, labels)
    if split_write:
        assert p.labels is not None  # a reader mid-epoch writes the staged rows: a second write
    _observe_epoch(p, order[half:], logits, feats, labels)
    return p


def _bound(e, h, target):
    """2 gamma_n A_i (alignment) for float32 factors e (m, C), h (m, D+1), target (m,) bool."""
    e64, h64 = e.double().abs(), h.double().abs()
    count = int(target.sum())
    gabs = e64[target].T @ h64[target] / count
    n = count + h.shape[1] + e.shape[1] + 2
    gamma = n * U / (1 - n * U)
    return 2 * gamma * ((h64 @ gabs.T) * e64).sum(1)


def test_bad_score_rows_raises_naming_it():
    with pytest.raises(ValueError, match="score_rows"):
        TEDPruner(N, 4, score_rows="kept")
    with pytest.raises(ValueError, match="score_rows"):
        TEDPruner(N, 4, score_rows=None)


@pytest.mark.parametrize("split_write", [False, True])
def test_fresh_scores_equal_all_rows_scores_to_float32_rounding(split_write):
    p = _two_epochs("fresh", split_write=split_write)
    rows = p.select(1).indices
    sel_mask = p.select(1).mask()
    tmask = p._target_mask(p.has_score | p.fresh, sel_mask)
    got = p._fresh_scores(tmask)
    assert got is not None
    idx, keep, align = got
    assert torch.equal(idx.sort().values, rows.sort().values)
    # staged order from the one write, index order when gathered after two writes
    assert torch.equal(idx, idx.sort().values) == split_write
    e, h = p.factors()  # the all-rows path on the same buffers
    keep_all, align_all = ted_scores(e, h, tmask, hnorm2=p._obs.hnorm2)
    pos = torch.argsort(idx)
    sub = rows.sort().values
    a32, a_ref = align[pos].double(), align_all[sub].double()
    e64, h64 = e.double(), h.double()
    g64 = e64[tmask].T @ h64[tmask] / int(tmask.sum())
    exact = ((h64[sub] @ g64.T) * e64[sub]).sum(1)
    bound = _bound(e[sub], h[sub], tmask[sub])
    assert ((a32 - exact).abs() <= bound / 2).all()
    assert ((a32 - a_ref).abs() <= bound).all()
    # keep-scores r = ||g_i||^2 - max(a_i, 0)^2 / ||g_T||^2: ||g_i||^2 has the same bits in both
    # paths; the rest moves with a_i and ||g_T||^2 (|d t| <= 2 sum |G| |dG| + rounding of the sum)
    t = (g64 * g64).sum()
    dg = 2 * (C * (D + 1) + int(tmask.sum()) + 2) * U * (e64.abs()[tmask].T @ h64.abs()[tmask])
    dt = (2 * g64.abs() * dg + dg * dg).sum() + 2 * C * (D + 1) * U * t
    ap = exact.clamp_min(0)
    gn = (e64[sub] ** 2).sum(1) * (h64[sub] ** 2).sum(1)
    rbound = (
        bound * (2 * ap + bound) / (t - dt)
        + ap**2 * dt / (t * (t - dt))
        + 16 * U * (gn + ap**2 / t)
    )
    assert ((keep[pos].double() - keep_all[sub].double()).abs() <= rbound).all()
    # a wrong g_T (all rows instead of the retained ones) is caught by the bound
    wrong_g = e64.T @ h64 / N
    wrong = ((h64[sub] @ wrong_g.T) * e64[sub]).sum(1)
    assert ((wrong - a_ref).abs() > bound).any()


def test_fresh_is_bit_identical_where_it_must_compute_all_rows():
    for every, target in ((True, "retained"), (False, "full")):
        pa = _two_epochs("all", every)
        pf = _two_epochs("fresh", every)
        pf.target = pa.target = target
        sel = pf.select(1).mask()
        assert pf._fresh_scores(pf._target_mask(pf.has_score | pf.fresh, sel)) is None
        pa.end_epoch()
        pf.end_epoch()
        assert torch.equal(pa.scores, pf.scores)
        assert torch.equal(pa.last_alignment, pf.last_alignment)


def test_fresh_updates_only_fresh_rows_and_keeps_the_others():
    pa, pf = _two_epochs("all"), _two_epochs("fresh")
    rows = pf.select(1).indices
    stale = torch.ones(N, dtype=torch.bool)
    stale[rows] = False
    before = pf.scores.clone()
    pa.end_epoch()
    pf.end_epoch()
    assert torch.equal(pf.scores[stale], before[stale])
    assert torch.equal(pf.scores[stale], pa.scores[stale])
    assert torch.allclose(pf.last_alignment, pa.last_alignment, rtol=1e-4, atol=1e-6)
    assert pf.state_dict()["extra"]["options"]["score_rows"] == "fresh"


def test_scoring_stage_rejects_a_bad_score_rows_before_any_run(tmp_path):
    from ted_prune.bench_mnist1d import run_scoring

    with pytest.raises(ValueError, match="score_rows"):
        run_scoring(tmp_path, seeds=1, num_samples=200, epochs=1, score_rows="kept")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deferred_softmax_and_norms_equal_the_eager_buffers_after_every_write(dtype):
    """`keep_written` defers the (N, ...) softmax rows and squared norms to their first read; they
    must equal, bit for bit, what the eager store writes row by row, after several writes with
    repeated rows (a stale buffer after a later write fails too)."""
    from ted_prune.observations import ObservationStore

    logits, feats, labels = _batches(4)
    eager = ObservationStore(N, dtype, capacity=64)
    lazy = ObservationStore(N, dtype, capacity=64, keep_written=True)
    g = torch.Generator().manual_seed(5)
    for step in range(6):
        idx = torch.randint(0, N, (48,), generator=g)  # repeats within and across writes
        scale = 1.0 + step  # new values for rows observed again
        for s in (eager, lazy):
            s.stage(idx, labels[idx], scale * logits[idx], scale * feats[idx])
            s.flush()
        assert lazy._stale and eager.probs is not None and eager.hnorm2 is not None
        if step % 2:  # read (materialise) after some writes only
            assert torch.equal(lazy.probs, eager.probs)
            assert torch.equal(lazy.hnorm2, eager.hnorm2)
            assert not lazy._stale
    assert torch.equal(lazy.logits, eager.logits) and torch.equal(lazy.h, eager.h)
    assert torch.equal(lazy.probs, eager.probs) and torch.equal(lazy.hnorm2, eager.hnorm2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_writes_covering_every_row_are_spread_not_recomputed(dtype):
    """`keep_written`: a write of all N rows (full-data epochs) spreads its softmax rows and norms
    at once (nothing stale); partial writes that together cover every row (an epoch whose pruned
    rows were re-scored) are spread on read, oldest first, without recomputing any row; partial
    writes that do not cover every row are recomputed. Each read equals the eager store bit for
    bit (rows written twice keep their last write)."""
    from ted_prune.observations import ObservationStore

    logits, feats, labels = _batches(6)
    eager = ObservationStore(N, dtype, capacity=N)
    lazy = ObservationStore(N, dtype, capacity=N, keep_written=True)
    recompute = lazy._squared_norms  # what a full recompute calls for all N rows
    g = torch.Generator().manual_seed(7)
    perm = torch.randperm(N, generator=g)
    writes = [
        (torch.cat([perm[:40], torch.randperm(N, generator=g)]), "whole"),  # repeats: last wins
        (perm[: N // 3], None),  # partial, not read
        (perm[N // 4 :], "spread"),  # with the previous one: every row, a quarter twice
        (perm[10:90], "recompute"),  # partial alone
    ]
    for step, (rows, read) in enumerate(writes):
        scale = 1.0 + step
        for s in (eager, lazy):
            s.stage(rows, labels[rows], scale * logits[rows], scale * feats[rows])
            s.flush()
        assert lazy._stale is (read != "whole")
        if read is None:
            continue
        calls = []
        lazy._squared_norms = lambda h, calls=calls: calls.append(h.shape[0]) or recompute(h)
        assert torch.equal(lazy.probs, eager.probs) and torch.equal(lazy.hnorm2, eager.hnorm2)
        assert calls == ([N] if read == "recompute" else [])
        assert not lazy._stale and not lazy._pending
        assert torch.equal(lazy.logits, eager.logits) and torch.equal(lazy.h, eager.h)


def test_fresh_factors_and_fallback_scores_equal_all_after_several_writes():
    """With several writes in an epoch "fresh" gathers from the deferred (N, ...) buffers; its
    factors (and the buffers the fallback path reads) equal those of "all"."""
    pa = _two_epochs("all", split_write=True)
    pf = _two_epochs("fresh", split_write=True)
    assert pf._obs._stale
    ea, ha = pa.factors()
    ef, hf = pf.factors()
    assert torch.equal(ea, ef) and torch.equal(ha, hf)
    assert torch.equal(pa._obs.hnorm2, pf._obs.hnorm2)
