"""Session 28: the eager update's lean loop (`seven._seven_update_lean`, less Python per target)
changes no bit: m, v, S, the weights and the work buffers equal the general loop's (the code before
it, `LEAN_UPDATE = False`) in float32 and float64, and a SevenPruner's masks, state, weights and
AdamW moments equal at every step of a window with cuts, hooked and not."""

from typing import Any

import pytest
import torch
from seven_prune import seven


def _bits(x: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (so that +0.0 and -0.0 differ)."""
    return x.view(torch.int64 if x.dtype == torch.float64 else torch.int32)


def _spy_lean(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the lean loop's calls."""
    calls: list[int] = []
    real = seven._seven_update_lean

    def spy(*a: Any, **kw: Any) -> None:
        calls.append(1)
        real(*a, **kw)

    monkeypatch.setattr(seven, "_seven_update_lean", spy)
    return calls


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rezero_on_cut", [True, False])
def test_lean_update_equals_the_general_loop_bit_for_bit(
    dtype: torch.dtype, rezero_on_cut: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight updates with cuts (S * M), re-zeroing on some steps and not on others, masks that
    shrink, gradients with exact zeros and pruned weights left non-zero (an unhooked optimizer):
    m, v, S, W, t1 and t2 of the lean loop are those of the general loop, bit for bit, on
    tensors with vectorised bodies, scalar tails and more than one thread's chunk."""
    if not seven._fused_adam_runs(torch.device("cpu"), dtype):
        pytest.skip("torch's fused AdamW kernel does not run here: no lean loop")
    calls = _spy_lean(monkeypatch)
    gen = torch.Generator().manual_seed(28)
    shapes = [(317, 331), (7, 13), (3,), (64, 64)]
    ws0 = [torch.randn(sh, generator=gen, dtype=dtype) for sh in shapes]
    runs = {}
    for lean in (True, False):
        monkeypatch.setattr(seven, "LEAN_UPDATE", lean)
        n_calls = len(calls)
        g2 = torch.Generator().manual_seed(5)
        ws = [w.clone() for w in ws0]
        st = {k: [torch.zeros(sh, dtype=dtype) for sh in shapes] for k in "mvS"}
        t1s = [torch.zeros(sh, dtype=dtype) for sh in shapes]
        t2s = [torch.zeros(sh, dtype=dtype) for sh in shapes]
        keeps = [torch.ones(sh, dtype=torch.bool) for sh in shapes]
        for k in range(8):
            gs = [torch.randn(sh, generator=g2, dtype=dtype) * 1e-3 for sh in shapes]
            gs[0][::5] = 0.0
            for g, kp in zip(gs, keeps):  # masked training's gradient: 0 where pruned
                g.mul_(kp)
            cutting = k % 3 == 2
            fks = [kp.to(dtype) for kp in keeps]
            seven._seven_update_eager(
                st["m"], st["v"], st["S"], ws, gs, keeps, t1s, t2s, alpha1=0.8, alpha2=0.9,
                eps=1e-9, k=k, abs_moments=True, cutting=cutting, rezero=k not in (1, 4, 7),
                rezero_on_cut=rezero_on_cut, fkeeps=fks,
            )  # fmt: skip
            if cutting:
                keeps = [kp & (torch.rand(kp.shape, generator=g2) > 0.3) for kp in keeps]
            for w in ws:  # an optimizer step that moves pruned weights too (not hooked)
                w.add_(torch.randn(w.shape, generator=g2, dtype=dtype), alpha=1e-2)
        assert len(calls) - n_calls == (8 if lean else 0)
        runs[lean] = (st, ws, t1s, t2s)
    for key in "mvS":
        for a, b in zip(runs[True][0][key], runs[False][0][key]):
            assert torch.equal(_bits(a), _bits(b)), key
    for i, what in ((1, "W"), (2, "t1"), (3, "t2")):
        for a, b in zip(runs[True][i], runs[False][i]):
            assert torch.equal(_bits(a), _bits(b)), what
    assert float(runs[True][0]["S"][0].sum()) > 0
    # the masking ran: pruned S are 0 after the last cut step's update (k = 5, then 2 updates)
    assert any(bool((s == 0).any()) for s in runs[True][0]["S"])


def test_lean_loop_is_taken_only_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The general loop runs for signed moments, without float masks, for float64 weights with
    float32 state, and with `LEAN_UPDATE` off; the lean loop for the default float32 case."""
    if not seven._fused_adam_runs(torch.device("cpu"), torch.float32):
        pytest.skip("torch's fused AdamW kernel does not run here: no lean loop")
    calls = _spy_lean(monkeypatch)
    shapes = [(5, 7), (9,)]

    def run(
        abs_moments: bool = True,
        with_fk: bool = True,
        wdtype: torch.dtype = torch.float32,
    ) -> int:
        n = len(calls)
        st = {k: [torch.zeros(sh) for sh in shapes] for k in "mvS"}
        ws = [torch.ones(sh, dtype=wdtype) for sh in shapes]
        gs = [torch.ones(sh, dtype=wdtype) for sh in shapes]
        keeps = [torch.ones(sh, dtype=torch.bool) for sh in shapes]
        seven._seven_update_eager(
            st["m"], st["v"], st["S"], ws, gs, keeps,
            [torch.zeros(sh) for sh in shapes], [torch.zeros(sh) for sh in shapes],
            alpha1=0.8, alpha2=0.9, eps=1e-9, k=0, abs_moments=abs_moments, cutting=False,
            fkeeps=[kp.float() for kp in keeps] if with_fk else None,
        )  # fmt: skip
        return len(calls) - n

    assert run() == 1
    assert run(abs_moments=False) == 0
    assert run(with_fk=False) == 0
    assert run(wdtype=torch.float64) == 0
    monkeypatch.setattr(seven, "LEAN_UPDATE", False)
    assert run() == 0


@pytest.mark.parametrize("hooked", [True, False])
def test_lean_update_changes_no_bit_of_a_pruner_run(
    hooked: bool, monkeypatch: pytest.MonkeyPatch, twin_pruner_run: Any
) -> None:
    """Two SevenPruners on the same tiny BERT and batches, one with the lean loop and one with the
    general loop (switched per step): the same masks, m, v, S, weights and AdamW moments, bit for
    bit, after every step of a window with four cuts, with the optimizer hooked or not."""
    calls = _spy_lean(monkeypatch)
    prs, cuts = twin_pruner_run("LEAN_UPDATE", (True, False), hooked)
    assert cuts == 4
    assert len(calls) == (8 if seven._fused_adam_runs(torch.device("cpu"), torch.float32) else 0)
    assert 0.6 < prs[0].achieved_sparsity <= 0.7
