"""N:M (2:4) selection: the exact pattern, the score decides, the schedule never revives."""

import pytest
import torch
from seven_prune import SevenPruner
from seven_prune.models import tiny_bert
from seven_prune.pruning import select_flat
from seven_prune.semi_structured import is_n_m, semi_structured_speed


def test_n_m_selection_keeps_the_two_best_of_every_four() -> None:
    """select_flat(pattern=(2, 4)) at 50%: each group keeps exactly its 2 highest scores."""
    g = torch.Generator().manual_seed(0)
    flat = torch.randn(6 * 8 + 4 * 12, generator=g)
    keep = select_flat(
        flat,
        [48, 48],
        ["a", "b"],
        48,
        pattern=(2, 4),
        shapes=[torch.Size([6, 8]), torch.Size([4, 12])],
    )
    groups, kept = flat.reshape(-1, 4), keep.reshape(-1, 4)
    assert bool((kept.sum(1) == 2).all())
    top2 = torch.zeros_like(kept)
    top2.scatter_(1, torch.topk(groups, 2, dim=1).indices, True)
    assert torch.equal(kept, top2)


def test_n_m_partial_cut_prunes_at_most_two_per_group_and_lowest_first() -> None:
    """select_flat(pattern=(2, 4)) above 50% density: <= 2 pruned per group, lowest candidates go."""
    g = torch.Generator().manual_seed(1)
    flat = torch.rand(64, generator=g)
    keep = select_flat(flat, [64], ["a"], 40, pattern=(2, 4), shapes=[torch.Size([4, 16])])
    assert int(keep.sum()) == 40
    assert bool(((~keep).reshape(-1, 4).sum(1) <= 2).all())
    # every pruned weight is one of its group's two lowest, and no kept candidate is lower
    groups = flat.reshape(-1, 4)
    low2 = torch.zeros_like(groups, dtype=torch.bool)
    low2.scatter_(1, torch.topk(groups, 2, dim=1, largest=False).indices, True)
    pruned = (~keep).reshape(-1, 4)
    assert bool((pruned <= low2).all())
    assert float(groups[pruned].max()) <= float(groups[low2 & ~pruned].min())


def test_seven_2_4_mode_ends_exactly_2_4_and_trains() -> None:
    """SevenPruner(pattern='2:4'): every cut keeps <= 2 pruned per group, the end is exact 2:4."""
    model = tiny_bert(seed=3)
    pruner = SevenPruner(model, 0.5, start=0, window=6, pattern="2:4")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    x, y = torch.randint(0, 64, (8, 10)), torch.randint(0, 2, (8,))
    prev = pruner.mask.state_dict()
    for _ in range(8):
        opt.zero_grad()
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        pruner.step()
        for name, m in pruner.mask.items():
            assert bool(((~m).reshape(-1, 4).sum(1) <= 2).all())
            assert not bool((m & ~prev[name]).any()), "revived"
        prev = pruner.mask.state_dict()
    assert pruner.done
    assert all(is_n_m(pruner.mask).values())
    assert pruner.achieved_sparsity == 0.5
    for name, p in pruner.params.items():
        assert bool((p.detach()[~pruner.mask[name]] == 0).all())


def test_n_m_bad_settings_are_named() -> None:
    """SevenPruner(pattern=...): malformed pattern, too high a sparsity, indivisible shapes."""
    with pytest.raises(ValueError, match="pattern must be 'N:M'"):
        SevenPruner(tiny_bert(), 0.5, pattern="4:2")
    with pytest.raises(TypeError, match="pattern"):
        SevenPruner(tiny_bert(), 0.5, pattern=24)
    with pytest.raises(ValueError, match="sparsity must be <= 0.5"):
        SevenPruner(tiny_bert(), 0.6, pattern="2:4")
    with pytest.raises(ValueError, match="divisible by 4"):
        SevenPruner(tiny_bert(hidden_size=30, num_heads=2), 0.5, pattern="2:4")


def test_speed_path_refuses_without_a_capable_gpu_or_with_a_non_2_4_mask() -> None:
    """semi_structured_speed: a clear RuntimeError without CUDA, ValueError for a non-2:4 mask."""
    pruner = SevenPruner(tiny_bert(), 0.5, pattern="2:4")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            semi_structured_speed(pruner.mask, pruner.params)
    else:  # the dense starting mask is not 2:4
        with pytest.raises((ValueError, RuntimeError)):
            semi_structured_speed(pruner.mask, pruner.params)
    assert not any(is_n_m(pruner.mask).values())


@pytest.mark.parametrize(
    ("kw", "err"),
    [
        ({"tokens": 0}, ValueError),
        ({"repeats": 0}, ValueError),
        ({"inner": -1}, ValueError),
        ({"tokens": 2.5}, TypeError),
        ({"inner": True}, TypeError),
        ({"backend": "cusparse"}, ValueError),
    ],
)
def test_speed_path_names_a_bad_count(kw: dict, err: type) -> None:
    """semi_structured_speed: tokens, repeats and inner are counts >= 1, checked before the GPU."""
    pruner = SevenPruner(tiny_bert(), 0.5, pattern="2:4")
    with pytest.raises(err, match=next(iter(kw))):
        semi_structured_speed(pruner.mask, pruner.params, **kw)


def test_to_semi_structured_names_a_bad_backend() -> None:
    """to_semi_structured: an unknown backend is a ValueError listing the allowed ones."""
    from seven_prune.semi_structured import to_semi_structured

    with pytest.raises(ValueError, match="backend must be one of"):
        to_semi_structured(torch.zeros(64, 64), "sputnik")
