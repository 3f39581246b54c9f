"""`TEDPruner(uniform_mix=lambda)`: keep probabilities mixed with a uniform per-class draw (session 25)."""

import math

import pytest
import torch
from ted_prune import TEDPruner
from ted_prune.sampling import sample_groups


def _groups(n=600, seed=1):
    g0 = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (n,), generator=g0)
    s = torch.randn(n, generator=g0, dtype=torch.float64)
    _, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    quota = (counts.double() * 0.4).floor().long().clamp_min(1)
    return s, gid, counts, quota


@pytest.mark.parametrize(
    ("value", "err"),
    [
        (1.5, ValueError),
        (-0.1, ValueError),
        (math.nan, ValueError),
        (True, TypeError),
        ("0.5", TypeError),
    ],
)
def test_bad_uniform_mix_names_the_argument(value, err):
    with pytest.raises(err, match="uniform_mix"):
        TEDPruner(100, 10, keep=0.5, uniform_mix=value)


def test_uniform_mix_needs_sampled_selection():
    with pytest.raises(ValueError, match="uniform_mix.*selection='sample'"):
        TEDPruner(100, 10, keep=0.5, selection="topk", uniform_mix=0.5)
    TEDPruner(100, 10, keep=0.5, selection="topk", uniform_mix=0.0)  # off: allowed


def test_mix_zero_is_the_default_bit_for_bit():
    s, gid, counts, quota = _groups()
    a = sample_groups(s, gid, counts, quota, 0.05, torch.Generator().manual_seed(3))
    b = sample_groups(
        s, gid, counts, quota, 0.05, torch.Generator().manual_seed(3), uniform_mix=0.0
    )
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("lam", [0.25, 0.5, 0.9])
def test_mixed_probabilities_are_the_stated_mixture(lam):
    s, gid, counts, quota = _groups()
    _, p0 = sample_groups(s, gid, counts, quota, 0.05, torch.Generator().manual_seed(3))
    _, p = sample_groups(
        s, gid, counts, quota, 0.05, torch.Generator().manual_seed(3), uniform_mix=lam
    )
    share = (quota.double() / counts.double())[gid]
    torch.testing.assert_close(p, (1 - lam) * p0 + lam * share, rtol=1e-14, atol=0)
    # still the quota per class, and every sample at least lambda of its class's share
    sums = torch.zeros(counts.numel(), dtype=torch.float64).index_add_(0, gid, p)
    torch.testing.assert_close(sums, quota.double(), rtol=1e-9, atol=0)
    assert bool((p >= lam * share - 1e-15).all())


def test_mix_one_ignores_the_scores():
    """lambda = 1: a uniform draw per class, the same set whatever the scores."""
    s, gid, counts, quota = _groups()
    other = torch.randn(s.numel(), generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    a, pa = sample_groups(
        s, gid, counts, quota, 0.05, torch.Generator().manual_seed(4), uniform_mix=1.0
    )
    b, _ = sample_groups(
        other, gid, counts, quota, 0.05, torch.Generator().manual_seed(4), uniform_mix=1.0
    )
    assert torch.equal(a, b)
    torch.testing.assert_close(pa, (quota.double() / counts.double())[gid], rtol=1e-15, atol=0)
    c, _ = sample_groups(
        s, gid, counts, quota, 0.05, torch.Generator().manual_seed(4), uniform_mix=0.5
    )
    d, _ = sample_groups(
        other, gid, counts, quota, 0.05, torch.Generator().manual_seed(4), uniform_mix=0.5
    )
    assert not torch.equal(c, d)  # below 1 the scores still matter


def test_mix_raises_the_coverage_of_low_scored_samples():
    """Over repeated draws with fixed scores, the least-kept sample is kept more often with the mix."""
    s, gid, counts, quota = _groups(n=300)
    seen = {lam: torch.zeros(s.numel()) for lam in (0.0, 0.5)}
    for t in range(300):
        for lam in seen:
            kept, _ = sample_groups(s, gid, counts, quota, 0.05, torch.Generator().manual_seed(t),
                                    uniform_mix=lam)  # fmt: skip
            seen[lam][kept] += 1
    assert seen[0.5].min() > 2 * seen[0.0].min()
    assert seen[0.5].std() < seen[0.0].std()
    assert seen[0.0].sum() == seen[0.5].sum() == 300 * int(quota.sum())


PRE_S26C = {"loss_weights": "importance", "tail": "none"}  # the pre-s26c defaults


def test_pruner_with_full_mix_weights_like_random_and_keeps_its_option(small_ted_fit):
    pruner, _, weights = small_ted_fit(uniform_mix=1.0, **PRE_S26C)
    pruned = [w for w in weights if (w != 1).any()]
    assert pruned  # pruned epochs happened
    for w in pruned:  # k / (quota_c / n_c): within rounding of the class quotas of 1
        assert float(w.max()) < 1.2 and float(w.min()) > 0.8
    assert pruner.state_dict()["extra"]["options"]["uniform_mix"] == 1.0
    _, _, w0 = small_ted_fit(uniform_mix=0.0, **PRE_S26C)
    assert max(float(w.max()) for w in w0) > 1.2  # unmixed importance weights spread further
