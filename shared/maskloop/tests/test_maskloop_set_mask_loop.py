"""`MaskedTraining.set_mask` in one loop over the parameters (session 21: the revival check in
cached chunks, one float multiplier per parameter for the weight and its first moments) against a
verbatim copy of the code before it (session 20's `set_mask`, `reapply`, `_fix_optimizer_state`,
`_revives`): masks, weights and every optimizer-state tensor bit for bit equal."""

from __future__ import annotations

import maskloop.masks
import numpy as np
import pytest
import torch
from maskloop import MaskedTraining, WeightMask
from maskloop.masks import (
    _FIRST_MOMENTS,
    _REVIVE_WORDS,
    _SECOND_MOMENTS,
    _UNTOUCHED_FLOOR,
    _revives,
)
from torch import nn

# ---------------------------------------------------------------- the code before session 21,
# verbatim (only the names changed: `_s20` suffixes, `self` typed; module-level functions)


def _revives_s20(new: torch.Tensor, old: torch.Tensor) -> bool:
    """Whether bool mask `new` keeps an entry that `old` prunes (`(new & ~old).any()`), in one
    read of both: on a CPU 8 entries at a time as 64-bit words (bools are bytes 0/1, so the
    bitwise and-not of the words is nonzero exactly where an entry is revived); elsewhere in torch."""
    if new.device.type != "cpu" or not (new.is_contiguous() and old.is_contiguous()):
        return bool((new & ~old).any())
    a, b = new.reshape(-1).numpy(), old.reshape(-1).numpy()
    m = a.size // 8 * 8
    if m and bool(np.any(a[:m].view(np.uint64) & ~b[:m].view(np.uint64))):
        return True
    return bool(np.any(a[m:] & ~b[m:]))


def _set_mask_s20(self: MaskedTraining, mask: WeightMask) -> None:
    """Swap in `mask` (same names and shapes); when attached, re-apply it at once and reset the
    optimizer state of the entries it changes (newly pruned: moments zeroed, second moment held;
    revived: moments 0, as for a weight that never had a gradient).

    With a hooked optimizer, whether the swap revives entries is found per parameter in one
    read of both masks (`_revives`, 64 bits at a time: ~3 ms for MiniLM's 10.7M targets); a
    parameter whose swap only prunes (a gradual pruner's cut) gets the one-multiply fix of its
    first moments, one that revives the full fix.
    """
    if not isinstance(mask, WeightMask):
        raise TypeError(f"mask must be a WeightMask, got {type(mask).__name__}")
    self.mask._check_compatible(mask, "swap")
    self.mask = WeightMask({n: mask[n].to(self.mask[n].device) for n in self.mask})
    if not self.attached:
        return
    # the revived entries, only where an optimizer's state is fixed from them (a read of
    # every mask otherwise wasted)
    hooked = self._hooked_optimizer is not None and self._safe()
    revived: list[torch.Tensor | None] = []
    for i, (n, p) in enumerate(self._params.items()):
        new = self.mask[n].to(p.device)
        if hooked:
            old = self._keep[i]
            revived.append(new & ~old if _revives_s20(new, old) else None)
        self._keep[i] = new  # the hooks read this list
    self.reapply()
    if hooked:
        self._fix_optimizer_state(revived=revived)


@torch.no_grad()
def _fix_optimizer_state_s20(
    self: MaskedTraining,
    revived: list[torch.Tensor | None] | None = None,
    refresh: bool = False,
) -> None:
    """Hold pruned entries' second moments at a positive constant; on a mask change (`revived`
    given: per parameter its revived entries, or None where the swap only prunes) also zero
    the first moments of newly pruned entries and reset revived entries' moments to 0."""
    opt = self._hooked_optimizer
    if opt is None or not self._safe():
        return
    swap = revived is not None
    for i, p in enumerate(self._plist):
        st = opt.state.get(p)
        if not st:
            continue  # no state before the optimizer's first step
        rev = revived[i] if revived is not None else None
        if swap and not refresh and id(p) in self._fixed and rev is None:
            # A swap that only prunes (a gradual pruner's cut): what keeps the newly pruned
            # weights at zero is their first moments at 0 (one multiply by the mask). Their
            # second moments keep decaying until the next refresh (0 / (sqrt(v) + eps) = 0
            # for any v >= 0); kept entries were kept before, floors included. The full
            # fix below cost ~64 ms per swap on MiniLM's 10.7M targets, this one pass.
            keep_u8 = self._keep[i].view(torch.uint8)
            for key in _FIRST_MOMENTS:
                t = st.get(key)
                if isinstance(t, torch.Tensor) and t.shape == p.shape:
                    t.mul_(keep_u8)  # +-0 as a fill
            continue
        pruned = ~self._keep[i]
        if rev is not None:
            for key in (*_FIRST_MOMENTS, *_SECOND_MOMENTS):
                t = st.get(key)
                if isinstance(t, torch.Tensor) and t.shape == p.shape:
                    t.masked_fill_(rev, 0.0)
        if swap or refresh or id(p) not in self._fixed:
            for key in _FIRST_MOMENTS:
                t = st.get(key)
                if isinstance(t, torch.Tensor) and t.shape == p.shape:
                    t.masked_fill_(pruned, 0.0)
            for key in _SECOND_MOMENTS:
                t = st.get(key)
                if isinstance(t, torch.Tensor) and t.shape == p.shape:
                    t.masked_fill_(pruned, self.second_moment)
                    floor = _UNTOUCHED_FLOOR.get(t.dtype)
                    if floor is not None:
                        t.masked_fill_(t == 0, floor)
            self._fixed.add(id(p))


@torch.no_grad()
def _reapply_s20(self: MaskedTraining) -> None:
    """Zero the pruned weights again (after an optimizer step, or after editing weights)."""
    if not self._plist:
        if self.model is None:
            raise ValueError("MaskedTraining is not attached to a model")
        self.mask.apply_(self.model)
        return
    for p, keep in zip(self._plist, self._keep):
        p.mul_(keep.view(torch.uint8))  # a NaN weight stays NaN: fit then stops on the loss


def _patch_s20(mp: pytest.MonkeyPatch) -> None:
    mp.setattr(MaskedTraining, "set_mask", _set_mask_s20)
    mp.setattr(MaskedTraining, "reapply", _reapply_s20)
    mp.setattr(MaskedTraining, "_fix_optimizer_state", _fix_optimizer_state_s20)


# ---------------------------------------------------------------- the comparison

_CHUNK_WORDS = 64  # `_REVIVE_WORDS` in the swap comparison: small targets span many chunks


def _model(dtype: torch.dtype) -> nn.Module:
    """A target of 65,536 entries (split over two threads by torch's elementwise kernels; 128 of
    the test's 512-entry revival chunks), one whose size is not a multiple of 8 (a tail), and
    small ones."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(24, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 13),
        nn.Tanh(), nn.Linear(13, 7),
    ).to(dtype)  # fmt: skip


def _masks(model: nn.Module) -> list[WeightMask]:
    """A sequence of masks: prune, prune more, the same again, revive (one entry only in the
    last revival chunk of the 256 x 256 weight, one in the tail of the 7 x 13 one), prune, revive
    all."""
    g = torch.Generator().manual_seed(3)
    names = [n for n, p in model.named_parameters() if n.endswith("weight")]
    shapes = {n: p.shape for n, p in model.named_parameters()}
    m0 = {n: torch.rand(shapes[n], generator=g) > 0.3 for n in names}
    m1 = {n: m0[n] & (torch.rand(shapes[n], generator=g) > 0.4) for n in names}
    m3 = {n: m.clone() for n, m in m1.items()}
    big = m3["2.weight"].view(-1)
    last = big.numel() - _CHUNK_WORDS * 8  # the last chunk
    dead = torch.nonzero(~big[last:]).flatten() + last
    big[dead[len(dead) // 2]] = True  # revived in the last chunk only
    tail = m3["6.weight"].view(-1)  # 91 entries: the last three are the tail
    tail[-1] = True
    m4 = {n: m3[n] & (torch.rand(shapes[n], generator=g) > 0.2) for n in names}
    m5 = {n: torch.ones_like(m) for n, m in m0.items()}
    return [WeightMask(m) for m in (m0, m1, m1, m3, m4, m5)]


def _run(dtype: torch.dtype, opt_name: str, hooked: bool) -> tuple[nn.Module, object, list]:
    model = _model(dtype)
    masks = _masks(model)
    params = list(model.parameters())
    if opt_name == "AdamW":
        opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    elif opt_name == "Adam":
        opt = torch.optim.Adam(params, lr=1e-2, weight_decay=0.01, amsgrad=True)
    else:
        opt = torch.optim.SGD(params, lr=1e-2, momentum=0.9, weight_decay=0.01)
    mt = MaskedTraining(model, masks[0], opt if hooked else None, refresh_every=4).attach()
    g = torch.Generator().manual_seed(4)
    seen = []
    for i, mask in enumerate(masks):
        mt.set_mask(mask)  # the first before the optimizer's first step: no state yet
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            x = torch.randn(5, 24, generator=g, dtype=dtype)
            model(x).pow(2).sum().backward()
            opt.step()
            if not hooked:
                mt.reapply()
        seen.append([k.clone() for k in mt._keep])
        if i == 3:  # a swap right after the state was touched by nothing but the optimizer
            mt.set_mask(mask)
    return model, opt, seen


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({torch.float64: torch.int64, torch.float32: torch.int32}[t.dtype])


_CASES = [  # (threads, optimizer, hooked): AdamW hooked (a pruner's) on 1 and 2 threads, the rest
    # on 1 (two threads only slow the small ops of the rest down on a shared 2-core machine)
    (1, "AdamW", True), (2, "AdamW", True), (1, "Adam", True), (1, "SGD", True),
    (1, "AdamW", False), (2, "AdamW", False),
]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("threads", "opt_name", "hooked"), _CASES)
def test_set_mask_in_one_loop_equals_the_session_20_swap_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch,
    threads: int,
    dtype: torch.dtype,
    opt_name: str,
    hooked: bool,
) -> None:
    monkeypatch.setattr(maskloop.masks, "_REVIVE_WORDS", _CHUNK_WORDS)  # chunks of 512 entries
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        new = _run(dtype, opt_name, hooked)
        with monkeypatch.context() as mp:
            _patch_s20(mp)
            old = _run(dtype, opt_name, hooked)
    finally:
        torch.set_num_threads(before)
    (m_new, o_new, k_new), (m_old, o_old, k_old) = new, old
    for a, b in zip(k_new, k_old):  # the masks masked training holds after every swap
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    for a, b in zip(m_new.parameters(), m_old.parameters()):
        assert torch.equal(_bits(a.detach()), _bits(b.detach()))
        st_new, st_old = o_new.state[a], o_old.state[b]
        assert st_new.keys() == st_old.keys()
        for key, t in st_new.items():
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                assert torch.equal(_bits(t), _bits(st_old[key])), key


def test_revives_in_chunks_finds_an_entry_at_every_chunk_boundary() -> None:
    """`_revives` by 64-bit words, `_REVIVE_WORDS` at a time: a single revived entry just before
    and after each chunk boundary, in the last chunk and in the tail, with and without a scratch
    smaller than a chunk's worth of a short mask; a swap that only prunes is no revival."""
    n = 2 * _REVIVE_WORDS * 8 + 8 * 5 + 3  # two full chunks, a partial one, a 3-entry tail
    old = torch.arange(n) % 3 != 0
    assert not _revives(old.clone(), old)
    assert not _revives(old & (torch.arange(n) % 2 == 0), old)
    dead = torch.nonzero(~old).flatten()
    for b in (0, _REVIVE_WORDS * 8, 2 * _REVIVE_WORDS * 8, n - 3, n):
        for i in dead[(dead >= b - 24) & (dead < b + 24)].tolist():
            new = old.clone()
            new[i] = True
            assert _revives(new, old), i
            assert _revives(new, old, np.empty(_REVIVE_WORDS, dtype=np.uint64)), i
    short = torch.zeros(40, dtype=torch.bool)
    assert _revives(short | (torch.arange(40) == 39), short, np.empty(1, dtype=np.uint64))
