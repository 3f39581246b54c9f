"""Session 29: the lean update over cache-sized flat slices of the large targets
(`seven.UPDATE_CHUNK`, `seven._chunk_views`) changes no bit: m, v, S, the weights and the work
buffers equal the whole-target loop's in float32 and float64, and a SevenPruner's masks, state,
weights and AdamW moments equal at every step of a window with cuts; bad chunk sizes raise.
Session 30: the chunk views kept between updates (`seven.CACHE_CHUNK_VIEWS`) change no bit
either."""

from typing import Any

import pytest
import torch
from seven_prune import seven


def _lean_runs(dtype: torch.dtype) -> None:
    if not seven._fused_adam_runs(torch.device("cpu"), dtype):
        pytest.skip("torch's fused AdamW kernel does not run here: no lean loop")


def _spy_chunks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of slices of each chunked call."""
    sizes: list[int] = []
    real = seven._chunk_views

    def spy(lists: Any, size: int) -> Any:
        out = real(lists, size)
        sizes.append(len(out[0]))
        return out

    monkeypatch.setattr(seven, "_chunk_views", spy)
    return sizes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunked_update_equals_the_whole_target_loop_bit_for_bit(
    dtype: torch.dtype,
    monkeypatch: pytest.MonkeyPatch,
    update_sequence: Any,
    assert_same_update: Any,
) -> None:
    """Eight updates with cuts, re-zeroing on some steps, masks that shrink, gradients with exact
    zeros (conftest's `update_sequence`): m, v, S, W, t1 and t2 with `UPDATE_CHUNK` 2048 (targets
    of 104,927 and 4,096 entries split, with a short last slice; small ones whole) are those
    without chunks, bit for bit."""
    _lean_runs(dtype)
    sizes = _spy_chunks(monkeypatch)
    runs = {}
    for chunk in (2048, 0):
        monkeypatch.setattr(seven, "UPDATE_CHUNK", chunk)
        runs[chunk] = update_sequence(dtype, (29, 6))
    # 104,927 entries -> 52 slices, 4,096 -> 2, and the two small targets whole: 56 per update
    assert sizes == [52 + 2 + 2] * 8
    assert_same_update(runs[2048], runs[0])


def test_chunk_views_are_views_in_order() -> None:
    """The slices cover each large target in order and write through to it."""
    a, b = torch.arange(5000.0).reshape(50, 100), torch.zeros(10)
    out = seven._chunk_views([[a, b]], 2048)
    assert [t.numel() for t in out[0]] == [2048, 2048, 904, 10]
    assert torch.equal(torch.cat([t.view(-1) for t in out[0][:3]]), a.view(-1))
    out[0][1].fill_(-1.0)
    assert float(a.view(-1)[2048]) == -1.0 and float(a.view(-1)[4095]) == -1.0
    assert float(a.view(-1)[4096]) == 4096.0


@pytest.mark.parametrize("size", [-1024, 1000, 1.5, True, "2048"])
def test_bad_chunk_size_raises(size: Any) -> None:
    with pytest.raises(ValueError, match="UPDATE_CHUNK"):
        seven._chunk_views([[torch.zeros(4096)]], size)


def test_non_contiguous_targets_run_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-contiguous weight (a transposed view) takes the whole-target loop, with the same
    numbers as without chunks."""
    _lean_runs(torch.float32)
    sizes = _spy_chunks(monkeypatch)
    monkeypatch.setattr(seven, "UPDATE_CHUNK", 1024)
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(64, 48, generator=gen).t()
    g = torch.randn(48, 64, generator=gen)
    st = [torch.zeros(48, 64) for _ in range(5)]
    seven._seven_update_eager(
        [st[0]], [st[1]], [st[2]], [w], [g], [torch.ones(48, 64, dtype=torch.bool)], [st[3]],
        [st[4]], alpha1=0.8, alpha2=0.9, eps=1e-9, k=0, abs_moments=True, cutting=False,
        fkeeps=[torch.ones(48, 64)],
    )  # fmt: skip
    assert sizes == []
    assert float(st[2].sum()) > 0


@pytest.mark.parametrize("hooked", [True, False])
def test_chunked_update_changes_no_bit_of_a_pruner_run(
    hooked: bool, monkeypatch: pytest.MonkeyPatch, twin_pruner_run: Any
) -> None:
    """Two SevenPruners on the same tiny BERT and batches, one with `UPDATE_CHUNK` 1024 and one
    without (switched per step): the same masks, m, v, S, weights and AdamW moments, bit for bit,
    after every step of a window with four cuts, with the optimizer hooked or not."""
    sizes = _spy_chunks(monkeypatch)
    prs, cuts = twin_pruner_run("UPDATE_CHUNK", (1024, 0), hooked)
    assert cuts == 4
    if seven._fused_adam_runs(torch.device("cpu"), torch.float32):
        # 13 targets, the four 64 x 32 ones in two slices of 1,024; the slices of everything
        # but the gradients made at the first update only (`CACHE_CHUNK_VIEWS`), the gradients'
        # at each of the 8 updates
        assert sizes == [17] * 9
    assert 0.6 < prs[0].achieved_sparsity <= 0.7


def test_cached_chunk_views_are_the_views_made_afresh() -> None:
    """`_chunk_views_cached` gives the views `_chunk_views` gives (same memory, sizes, order);
    a second call with new gradients reuses the other lists' view objects and slices the new
    gradients; a weight moved to new memory (or a changed chunk size) makes them again."""
    gen = torch.Generator().manual_seed(30)
    shapes = [(50, 100), (10,), (64, 64)]
    lists = [[torch.randn(sh, generator=gen) for sh in shapes] for _ in range(8)]
    cache: dict[str, Any] = {}

    def same(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> bool:
        return [[(t.data_ptr(), t.shape) for t in lst] for lst in a] == [
            [(t.data_ptr(), t.shape) for t in lst] for lst in b
        ]

    first = seven._chunk_views_cached(lists, 2048, cache)
    assert same(first, seven._chunk_views(lists, 2048))
    assert [t.numel() for t in first[0]] == [2048, 2048, 904, 10, 2048, 2048]
    lists[seven._FRESH] = [torch.randn(sh, generator=gen) for sh in shapes]
    second = seven._chunk_views_cached(lists, 2048, cache)
    assert same(second, seven._chunk_views(lists, 2048))
    assert all(a is b for i in range(8) if i != seven._FRESH for a, b in zip(first[i], second[i]))
    assert not same([first[seven._FRESH]], [second[seven._FRESH]])
    lists[3][0] = torch.randn(50, 100, generator=gen)  # a weight in new memory
    third = seven._chunk_views_cached(lists, 2048, cache)
    assert same(third, seven._chunk_views(lists, 2048))
    assert third[3][0].data_ptr() == lists[3][0].data_ptr()
    fourth = seven._chunk_views_cached(lists, 1024, cache)
    assert same(fourth, seven._chunk_views(lists, 1024))
    with pytest.raises(ValueError, match="UPDATE_CHUNK"):
        seven._chunk_views_cached(lists, 1000, {})


@pytest.mark.parametrize("hooked", [True, False])
def test_cached_chunk_views_change_no_bit_of_a_pruner_run(
    hooked: bool, monkeypatch: pytest.MonkeyPatch, twin_pruner_run: Any
) -> None:
    """Two SevenPruners chunking at 1,024, one keeping the chunk views between updates
    (`CACHE_CHUNK_VIEWS`, the default) and one making them at every update (session 29's code):
    the same masks, m, v, S, weights and AdamW moments, bit for bit, after every step of a window
    with four cuts; the kept views are freed with the work buffers after the window."""
    monkeypatch.setattr(seven, "UPDATE_CHUNK", 1024)
    sizes = _spy_chunks(monkeypatch)
    prs, cuts = twin_pruner_run("CACHE_CHUNK_VIEWS", (True, False), hooked)
    assert cuts == 4
    if seven._fused_adam_runs(torch.device("cpu"), torch.float32):
        assert len(sizes) == 9 + 8  # cached: once for the buffers + the gradients per update
    assert prs[0].done and prs[0]._work_cache == {} and prs[0]._scratch_bufs == {}
