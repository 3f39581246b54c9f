"""Session 28: the eager update's lean loop (`seven._seven_update_lean`, less Python per target)
changes no bit: m, v, S, the weights and the work buffers equal the general loop's (the code before
it, `LEAN_UPDATE = False`) in float32 and float64, and a SevenPruner's masks, state, weights and
AdamW moments equal at every step of a window with cuts, hooked and not."""

from typing import Any

import pytest
import torch
from seven_prune import seven


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
    dtype: torch.dtype,
    rezero_on_cut: bool,
    monkeypatch: pytest.MonkeyPatch,
    update_sequence: Any,
    assert_same_update: Any,
) -> None:
    """Eight updates with cuts (S * M), re-zeroing on some steps and not on others, masks that
    shrink, gradients with exact zeros and pruned weights left non-zero (an unhooked optimizer;
    conftest's `update_sequence`): m, v, S, W, t1 and t2 of the lean loop are those of the general
    loop, bit for bit, on tensors with vectorised bodies, scalar tails and more than one thread's
    chunk."""
    if not seven._fused_adam_runs(torch.device("cpu"), dtype):
        pytest.skip("torch's fused AdamW kernel does not run here: no lean loop")
    calls = _spy_lean(monkeypatch)
    runs = {}
    for lean in (True, False):
        monkeypatch.setattr(seven, "LEAN_UPDATE", lean)
        n_calls = len(calls)
        runs[lean] = update_sequence(dtype, (28, 5), rezero_on_cut)
        assert len(calls) - n_calls == (8 if lean else 0)
    assert_same_update(runs[True], runs[False])


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
