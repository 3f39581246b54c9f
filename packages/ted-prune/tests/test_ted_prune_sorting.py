"""The sorts behind TED's cheap selection equal torch's stable sorts exactly (issue 15, deliver 3).

`stable_argsort` (a radix sort on order-preserving integer keys) and `stable_group_argsort` (NumPy's
int16 radix sort) must give the permutation `torch.argsort(..., stable=True)` gives, ties, -0.0,
infinities and both directions included, or a selection would change.
"""

import pytest
import torch
from ted_prune.sampling import stable_argsort, stable_group_argsort, top_in_groups


def _values(n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64) * 10 ** torch.randint(
        -30, 30, (n,), generator=g
    )
    x[: n // 10] = x[n // 10 : n // 5]  # exact ties
    x[n // 5 : n // 5 + 20] = float("inf")
    x[n // 5 + 20 : n // 5 + 30] = -float("inf")
    x[n // 5 + 30 : n // 5 + 40] = 0.0
    x[n // 5 + 40 : n // 5 + 50] = -0.0  # equal to 0.0: ties with it, by index
    x[n // 5 + 50 : n // 5 + 60] = 5e-324  # subnormal
    x[n // 2 :: 7] = torch.round(x[n // 2 :: 7])
    return x[torch.randperm(n, generator=g)].to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("n", [300, 5000])
def test_stable_argsort_equals_torch(dtype, descending, n):
    for seed in range(3):
        x = _values(n, dtype, seed)
        want = torch.argsort(x, descending=descending, stable=True)
        assert torch.equal(stable_argsort(x, descending=descending), want)


def test_stable_argsort_falls_back_for_nan_ints_and_small_inputs():
    x = _values(1000, torch.float64, 0)
    x[::50] = float("nan")
    for v in (x, torch.randint(0, 5, (1000,)), x[:10]):
        assert torch.equal(stable_argsort(v), torch.argsort(v, stable=True))


@pytest.mark.parametrize("k", [1, 10, 40_000])
def test_stable_group_argsort_equals_torch(k):
    gid = torch.randint(0, k, (3000,), generator=torch.Generator().manual_seed(k))
    assert torch.equal(stable_group_argsort(gid), torch.argsort(gid, stable=True))


@pytest.mark.parametrize("seed", range(4))
def test_top_in_groups_keeps_what_the_stable_sort_keeps(seed):
    """Each group's quota largest keys, ties by the lower index: the set that a stable sort by
    group, then by key descending, keeps from each group's front (many ties, infinities, empty
    and whole quotas, a group larger than the others)."""
    g = torch.Generator().manual_seed(seed)
    n = 2000
    gid = torch.randint(0, 7, (n,), generator=g)
    gid[:300] = 3
    keys = torch.randint(-5, 5, (n,), generator=g).double()  # many exact ties
    keys[torch.randperm(n, generator=g)[:100]] = float("inf")
    keys[torch.randperm(n, generator=g)[:100]] = -float("inf")
    keys[torch.randperm(n, generator=g)[:100]] = -0.0  # equal to 0.0
    keys[::3] += torch.rand(n, generator=g, dtype=torch.float64)[::3]
    counts = torch.bincount(gid, minlength=7)
    quota = (torch.rand(7, generator=g) * counts).long()
    quota[0], quota[1] = 0, counts[1]  # nothing kept; everything kept
    order = torch.argsort(-keys, stable=True)
    order = order[torch.argsort(gid[order], stable=True)]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[gid[order]]
    want = torch.sort(order[rank < quota[gid[order]]]).values
    members = stable_group_argsort(gid)
    got = top_in_groups(keys, members, counts, quota)
    assert got.dtype == torch.int64
    assert torch.equal(got, want)


def test_top_in_groups_rejects_mismatched_input():
    keys, members = torch.zeros(4, dtype=torch.float64), torch.arange(4)
    counts, quota = torch.tensor([2, 2]), torch.tensor([1, 1])
    with pytest.raises(ValueError, match="keys and members"):
        top_in_groups(keys, members[:3], counts, quota)
    with pytest.raises(ValueError, match="counts must hold the group sizes"):
        top_in_groups(keys, members, torch.tensor([2, 1]), quota)
    with pytest.raises(ValueError, match="quota one entry per group"):
        top_in_groups(keys, members, counts, torch.tensor([1]))
    with pytest.raises(ValueError, match="NaN"):
        top_in_groups(torch.tensor([0.0, float("nan"), 1.0, 2.0]), members, counts, quota)
