"""The cut's mask swap: `MaskedTraining.set_mask` finding revived entries itself (session 17, one
read of both masks as 64-bit words) leaves weights, masks, scores and AdamW's moments bit for bit
as the two-pass search it replaced."""

from __future__ import annotations

import pytest
import torch
from maskloop import MaskedTraining, WeightMask
from seven_prune import SevenPruner, TaylorPruner


def _old_set_mask(self: MaskedTraining, mask: WeightMask, **_: object) -> None:
    """`MaskedTraining.set_mask` as it was before session 16b (the two-pass torch search for
    revived entries on every swap), kept as the reference."""
    self.mask = WeightMask({n: mask[n].to(self.mask[n].device) for n in self.mask})
    old = [~keep for keep in self._keep] if self._hooked_optimizer is not None else None
    for i, (n, p) in enumerate(self._params.items()):
        self._keep[i] = self.mask[n].to(p.device)
    for p, keep in zip(self._plist, self._keep):
        with torch.no_grad():
            p.mul_(keep.view(torch.uint8))
    if old is not None:  # per parameter its revived entries, None where the swap only prunes
        rev = [o & k if bool((o & k).any()) else None for o, k in zip(old, self._keep)]
        self._fix_optimizer_state(revived=rev)


def _run(
    enc: type[torch.nn.Module], cls: type, dtype: torch.dtype, hooked: bool
) -> tuple[torch.nn.Module, object, object]:
    gen = torch.Generator().manual_seed(5)
    xs = torch.randn(10, 6, 12, generator=gen, dtype=dtype)
    ys = torch.randint(0, 2, (10, 6), generator=gen)
    torch.manual_seed(0)
    model = enc().to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    pr = cls(
        model, 0.7, start=0, window=10, delta_t=2, targets=r"encoder\.",
        optimizer=opt if hooked else None,
    )  # fmt: skip
    for x, y in zip(xs, ys):  # 10 steps: updates k = 0..8, cuts at k = 1, 3, 5, 7, 8
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        pr.step()
    return model, pr, opt


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int64 if t.dtype == torch.float64 else torch.int32)


@pytest.mark.parametrize("cls", [SevenPruner, TaylorPruner])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hooked", [True, False])
def test_cut_swap_equals_the_old_swap_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
    two_linear_encoder: type[torch.nn.Module],
    cls: type,
    dtype: torch.dtype,
    hooked: bool,
) -> None:
    new = _run(two_linear_encoder, cls, dtype, hooked)
    with monkeypatch.context() as m:
        m.setattr(MaskedTraining, "set_mask", _old_set_mask)
        old = _run(two_linear_encoder, cls, dtype, hooked)
    (m_new, p_new, o_new), (m_old, p_old, o_old) = new, old
    assert 0.6 < p_new.achieved_sparsity <= 0.7
    for n in p_new.names:
        assert torch.equal(p_new.mask[n], p_old.mask[n]), n
    for a, b in zip(m_new.parameters(), m_old.parameters()):
        assert torch.equal(_bits(a.detach()), _bits(b.detach()))
    for a, b in zip(m_new.parameters(), m_old.parameters()):
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(_bits(o_new.state[a][key]), _bits(o_old.state[b][key])), key
    for key in p_new.state:
        for a, b in zip(p_new.state[key], p_old.state[key]):
            assert torch.equal(_bits(a), _bits(b)), key
