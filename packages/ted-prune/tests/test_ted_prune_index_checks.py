"""Dataset indices outside [0, N) always raise a clear ValueError naming `indices`.

TED stages its observations and checks the range of every staged batch before any row is written:
the first batch after each write when it is observed, the others in one reduction per write, and
every batch whose loss weights are read (`update`, `PrunerCallback`) when they are read. Other
pruners that learn from batches check every batch in `observe`; those that learn nothing from them
(full data, the random baselines) only check shapes and count the samples.
"""

import pytest
import torch
from ted_prune import EL2N, FullData, InfoBatch, RandomDynamic, RandomStatic, TEDPruner
from ted_prune.pruner import indices_in_range

N, C, D = 10, 3, 4


def _batch(idx):
    idx = torch.tensor(idx)
    b = idx.numel()
    return idx, torch.randn(b, C), torch.randn(b, D), torch.zeros(b, dtype=torch.long)


def test_indices_in_range_equals_the_two_sided_check():
    big = torch.iinfo(torch.int64)
    edge = [0, 1, N - 1, N, N + 1, -1, -N, big.min, big.max, big.min + 1]
    g = torch.Generator().manual_seed(0)
    cases = [torch.tensor([v]) for v in edge] + [torch.tensor(edge)]
    cases += [torch.randint(-3, N + 3, (k,), generator=g) for k in range(1, 40)]
    cases += [torch.randint(0, N, (64,), generator=g)[::2]]  # a strided view
    for idx in cases:
        assert indices_in_range(idx, N) == bool(((idx >= 0) & (idx < N)).all()), idx
    assert indices_in_range(torch.empty(0, dtype=torch.long), N)


@pytest.mark.parametrize("bad", [N, -1, 1 << 40])
def test_first_batch_after_a_write_is_checked_when_observed(bad):
    p = TEDPruner(N, epochs=2)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 10\)"):
        p.observe(*_batch([1, bad]))
    p.observe(*_batch([1, 2]))  # nothing of the bad batch was staged
    assert p.labels.tolist() == [-1, 0, 0] + [-1] * 7


@pytest.mark.parametrize("bad", [N, -1])
def test_a_later_bad_batch_raises_before_any_row_is_written(bad):
    p = TEDPruner(N, epochs=2)
    p.observe(*_batch([0, 1]))
    p.observe(*_batch([2, 3]))
    p.observe(*_batch([4, bad]))  # checked with the whole write
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 10\).* 3rd batch"):
        p.end_epoch()
    assert p._obs.labels is None or bool((p._obs.labels == -1).all())  # no row written


@pytest.mark.parametrize("bad", [N, -1])
def test_update_reports_a_bad_batch_when_it_is_passed(bad):
    # selection="sample" with importance weights: update reads every batch's loss weights
    p = TEDPruner(N, epochs=2, loss_weights="importance")
    assert p.reweights
    idx, logits, feats, y = _batch([0, 1])
    p.update(torch.ones(2), idx, logits, feats, y)
    idx, logits, feats, y = _batch([2, bad])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 10\)"):
        p.update(torch.ones(2), idx, logits, feats, y)
    with pytest.raises(ValueError, match="indices"):
        p.weights(torch.tensor([bad]))


def test_weights_of_good_indices_are_unchanged():
    p = TEDPruner(N, epochs=2)
    w = p.weights(torch.tensor([[3, 4], [0, 9]], dtype=torch.float64))  # converted, flattened
    assert w.dtype == torch.float32 and w.tolist() == [1.0] * 4


@pytest.mark.parametrize("bad", [N, -1])
def test_other_pruners_check_every_batch_when_observed(bad):
    p = EL2N(N, epochs=3, keep=0.5)
    p.observe(*_batch([0, 1]))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 10\)"):
        p.observe(*_batch([2, bad]))


def test_pruners_that_learn_nothing_only_count_and_check_shapes():
    learners = [TEDPruner(N, epochs=2), EL2N(N, epochs=3, keep=0.5), InfoBatch(N, epochs=3)]
    assert all(p._learns for p in learners)
    for p in (FullData(N, epochs=2), RandomStatic(N, epochs=2), RandomDynamic(N, epochs=2)):
        assert not p._learns
        idx, logits, feats, y = _batch([0, 1, 2])
        p.observe(idx, logits, feats, y)
        p.observe(idx.view(3, 1), logits, None, y)  # flattened, as before: 3 samples
        assert p.update(torch.tensor([1.0, 2.0, 3.0]), idx, logits, None, y).item() == 2.0
        assert p.score_seconds == 0.0  # nothing timed: no scoring work
        with pytest.raises(ValueError, match="logits must have shape"):
            p.observe(idx, torch.randn(2, C), None, y)
        with pytest.raises(ValueError, match="targets must be given"):
            p.observe(idx, logits, None, None)
        with pytest.raises(ValueError, match="targets has 2 entries, indices 3"):
            p.observe(idx, logits, None, y[:2])
        assert p.end_epoch()["trained"] == 9.0  # the three good batches, none of the bad ones
