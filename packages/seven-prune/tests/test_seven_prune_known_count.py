"""Session 33: a gradual pruner's cut passes what it knows. Its global selection gets the kept
count of the last cut as `select_flat(n_alive=...)` (no count of the alive-vector) and its swap
`prunes_only=True` (maskloop skips the revive check): masks, weights, scores and AdamW's moments
are bit for bit those of a cut that counts and checks, in float32 and float64, hooked or not."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from maskloop import MaskedTraining
from seven_prune import SevenPruner, pruning


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (so that +0.0 and -0.0 differ)."""
    return t.view(torch.int64 if t.dtype == torch.float64 else torch.int32)


def _run(
    enc: type[torch.nn.Module],
    dtype: torch.dtype,
    hooked: bool,
    min_density: float,
    scope: str = "global",
) -> tuple[torch.nn.Module, SevenPruner, torch.optim.Optimizer]:
    gen = torch.Generator().manual_seed(5)
    xs = torch.randn(10, 6, 12, generator=gen, dtype=dtype)
    ys = torch.randint(0, 2, (10, 6), generator=gen)
    torch.manual_seed(0)
    model = enc().to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    pr = SevenPruner(
        model, 0.7, start=0, window=10, delta_t=2, targets=r"encoder\.", scope=scope,
        min_density=min_density, optimizer=opt if hooked else None,
    )  # fmt: skip
    for x, y in zip(xs, ys):  # 10 steps: updates k = 0..8, cuts at k = 1, 3, 5, 7, 8
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        pr.step()
    return model, pr, opt


def _spy(monkeypatch: pytest.MonkeyPatch, force_unknown: bool) -> list[tuple[Any, Any, int]]:
    """Record (n_alive, prunes_only, the alive count) at every cut; with `force_unknown` the cut
    counts and checks as before session 33 (n_alive=None, prunes_only=False)."""
    seen: list[tuple[Any, Any, int]] = []
    select, set_mask = pruning.select_flat, MaskedTraining.set_mask

    def selecting(*a: Any, n_alive: int | None = None, **kw: Any) -> torch.Tensor:
        alive = a[4]
        seen.append((n_alive, None, int(alive.sum())))
        return select(*a, n_alive=None if force_unknown else n_alive, **kw)

    def swapping(self: MaskedTraining, mask: Any, *, prunes_only: bool = False) -> None:
        n_alive, _, count = seen[-1]
        seen[-1] = (n_alive, prunes_only, count)
        set_mask(self, mask, prunes_only=False if force_unknown else prunes_only)

    monkeypatch.setattr(pruning, "select_flat", selecting)
    monkeypatch.setattr(MaskedTraining, "set_mask", swapping)
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hooked", [True, False])
@pytest.mark.parametrize("min_density", [0.0, 0.2])
def test_known_count_and_prunes_only_change_no_bit(
    monkeypatch: pytest.MonkeyPatch,
    two_linear_encoder: type[torch.nn.Module],
    dtype: torch.dtype,
    hooked: bool,
    min_density: float,
) -> None:
    runs, seen = {}, {}
    for force_unknown in (False, True):
        with monkeypatch.context() as m:
            seen[force_unknown] = _spy(m, force_unknown)
            runs[force_unknown] = _run(two_linear_encoder, dtype, hooked, min_density)
    # the fast run passed the true count and the promise at every cut (5 cuts)
    assert len(seen[False]) == 5
    assert all(n == c and po is True for n, po, c in seen[False])
    (m_new, p_new, o_new), (m_old, p_old, o_old) = runs[False], runs[True]
    assert 0.6 < p_new.achieved_sparsity <= 0.7
    for n in p_new.names:
        assert torch.equal(p_new.mask[n], p_old.mask[n]), n
    for a, b in zip(m_new.parameters(), m_old.parameters()):
        assert torch.equal(bits(a.detach()), bits(b.detach()))
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(bits(o_new.state[a][key]), bits(o_old.state[b][key])), key
    for key in p_new.state:
        for a, b in zip(p_new.state[key], p_old.state[key]):
            assert torch.equal(bits(a), bits(b)), key


def test_layer_scope_and_a_loaded_mask_count_and_check(
    monkeypatch: pytest.MonkeyPatch, two_linear_encoder: type[torch.nn.Module]
) -> None:
    """Per-layer cuts keep a count per tensor, not the total: they count and check as before; so
    does the first cut after `load_state_dict` (the loaded mask is not the last cut's)."""
    seen = _spy(monkeypatch, force_unknown=False)
    _run(two_linear_encoder, torch.float64, True, 0.0, scope="layer")
    assert len(seen) == 5 and all(n is None and po is False for n, po, _ in seen)
    seen.clear()
    torch.manual_seed(0)
    model = two_linear_encoder().to(torch.float64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    gen = torch.Generator().manual_seed(6)

    def make() -> SevenPruner:
        return SevenPruner(
            model, 0.7, start=0, window=20, delta_t=2, targets=r"encoder\.", optimizer=opt
        )

    def steps(pr: SevenPruner, n: int) -> None:
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            x = torch.randn(6, 12, generator=gen, dtype=torch.float64)
            y = torch.randint(0, 2, (6,), generator=gen)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            pr.step()

    first = make()
    steps(first, 4)  # cuts at k = 1, 3
    state = first.state_dict()
    first.remove()
    second = make()
    second.load_state_dict(state)
    seen.clear()
    steps(second, 4)  # cuts at k = 5 (the loaded mask: counted, checked) and 7 (known)
    assert [(n, po) for n, po, _ in seen] == [(None, False), (seen[1][2], True)]


def test_select_flat_with_the_known_count_is_the_same_selection() -> None:
    """A buffer large enough for the bracketed path (and a small one): `n_alive` given or
    counted, the same keep-vector; with the guard too."""
    gen = torch.Generator().manual_seed(0)
    for n in (pruning.SAMPLED_SELECTION_MIN + 1001, 500):
        flat = torch.rand(n, generator=gen)
        flat[::5] = 0.0  # ties at 0 among the alive
        alive = torch.rand(n, generator=gen) < 0.6
        flat[~alive] = 0.0
        c = int(alive.sum())
        sizes = [n // 3, n - n // 3]
        for md in (0.0, 0.2):
            a = pruning.select_flat(flat, sizes, ["a", "b"], c // 2, alive, min_density=md,
                                    dead_zero=True, warn=False)  # fmt: skip
            b = pruning.select_flat(flat, sizes, ["a", "b"], c // 2, alive, min_density=md,
                                    dead_zero=True, warn=False, n_alive=c)  # fmt: skip
            assert torch.equal(a, b) and int(a.sum()) == c // 2


@pytest.mark.parametrize("bad", [-1, 11, 2.0, True, "5"])
def test_select_flat_rejects_a_bad_n_alive(bad: object) -> None:
    flat, alive = torch.arange(10.0), torch.ones(10, dtype=torch.bool)
    with pytest.raises(ValueError, match="n_alive"):
        pruning.select_flat(flat, [10], ["w"], 5, alive, n_alive=bad)  # type: ignore[arg-type]


def test_select_flat_rejects_n_alive_without_alive() -> None:
    with pytest.raises(ValueError, match="n_alive"):
        pruning.select_flat(torch.arange(10.0), [10], ["w"], 5, None, n_alive=10)
