"""Session 31: a pruner's masked training re-zeroes CPU weights with numpy's buffered multiply
(`pruning._PrunerMasking.reapply`, `pruning.NUMPY_REAPPLY`) instead of torch's multiply by the
mask's uint8 view, which first casts the mask into a new float tensor: the same weights bit for bit
(float32 and float64, -0.0, NaN, negative weights), the same pruner runs (masks, m, v, S, weights,
AdamW moments) hooked and not, and the fallback for weights numpy cannot take."""

from typing import Any

import pytest
import torch
from maskloop import MaskedTraining, WeightMask
from seven_prune import pruning
from torch import nn


def bits(x: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (so that +0.0 and -0.0 differ)."""
    return x.view(torch.int64 if x.dtype == torch.float64 else torch.int32)


def _model(dtype: torch.dtype) -> tuple[nn.Module, WeightMask]:
    gen = torch.Generator().manual_seed(7)
    model = nn.Sequential(nn.Linear(37, 29), nn.ReLU(), nn.Linear(29, 5)).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
        w = model[0].weight
        w[0, :4] = torch.tensor([-0.0, float("nan"), -1.5, 0.0], dtype=dtype)
    keep = {n: torch.rand(p.shape, generator=gen) > 0.4 for n, p in model.named_parameters()
            if n.endswith("weight")}  # fmt: skip
    keep["0.weight"][0, :4] = torch.tensor([False, False, False, True])
    return model, WeightMask(keep)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_reapply_equals_maskloops_bit_for_bit(dtype: torch.dtype) -> None:
    """The same weights, bit for bit, as `MaskedTraining.reapply` (+-0 where pruned, a pruned NaN
    stays NaN as torch leaves it, kept entries untouched), after the weights moved."""
    outs = []
    for cls in (pruning._PrunerMasking, MaskedTraining):
        model, mask = _model(dtype)
        mt = cls(model, mask).attach()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.25)
                p.neg_()
        mt.reapply()
        outs.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*outs):
        assert torch.equal(bits(a), bits(b))
    assert bool((outs[0][0] == 0).any()) and bool(torch.signbit(outs[0][0][outs[0][0] == 0]).any())


def test_numpy_path_is_taken_and_the_fallback_still_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Contiguous CPU float weights take numpy's multiply (no torch `mul_`); a non-contiguous
    weight (a transposed parameter) falls back to torch's multiply, with the same result."""
    calls: list[int] = []
    real = torch.Tensor.mul_

    def spy(self: torch.Tensor, other: Any) -> torch.Tensor:
        calls.append(self.numel())
        return real(self, other)

    model, mask = _model(torch.float64)
    mt = pruning._PrunerMasking(model, mask).attach()
    monkeypatch.setattr(torch.Tensor, "mul_", spy)
    mt.reapply()
    assert calls == []
    monkeypatch.setattr(pruning, "NUMPY_REAPPLY", False)
    mt.reapply()
    assert calls == [37 * 29, 29 * 5]
    calls.clear()
    monkeypatch.setattr(pruning, "NUMPY_REAPPLY", True)
    lin = nn.Linear(8, 6).double()
    with torch.no_grad():
        lin.weight = nn.Parameter(lin.weight.detach().t().contiguous().t())  # non-contiguous
    keep = WeightMask({"weight": torch.arange(48).reshape(6, 8) % 3 > 0})
    mt2 = pruning._PrunerMasking(lin, keep).attach()
    calls.clear()
    mt2.reapply()
    assert calls == [48]
    assert bool((lin.weight.detach()[~keep["weight"]] == 0).all())


@pytest.mark.parametrize("hooked", [True, False])
def test_numpy_reapply_changes_no_bit_of_a_pruner_run(hooked: bool, twin_pruner_run: Any) -> None:
    """Two SevenPruners on the same tiny BERT and batches, numpy's re-zeroing and maskloop's: the
    same masks, m, v, S, weights and AdamW moments after every step of a window with four cuts
    (hooked: re-zeroing at the cuts; not hooked: at every step)."""
    prs, cuts = twin_pruner_run("NUMPY_REAPPLY", (True, False), hooked, module=pruning)
    assert cuts == 4
    assert isinstance(prs[0].masked, pruning._PrunerMasking)
    assert 0.6 < prs[0].achieved_sparsity <= 0.7
