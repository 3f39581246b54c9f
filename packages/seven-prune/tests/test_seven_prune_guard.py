"""The guard against layer collapse (issue 20 point 1), the per-layer scope, and the cheap cut's
exact agreement with the selection it replaced."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from maskloop import WeightMask
from seven_prune import MagnitudePruner, SevenPruner, select_global
from seven_prune.pruning import select_flat

README = Path(__file__).resolve().parents[1] / "README.md"


def _old_select_global(scores, n_keep, previous=None):
    """The selection as committed before the cheap cut (concatenate, -inf for pruned entries, one
    numpy.partition threshold, ties: the last ones kept), kept here as the reference."""
    names = list(scores)
    allflat = torch.cat([scores[n].reshape(-1).float() for n in names])
    if previous is not None:
        allflat.masked_fill_(~torch.cat([previous[n].reshape(-1) for n in names]), -math.inf)
    total = allflat.numel()
    n_prune = total - n_keep
    if n_prune == 0:
        keep = torch.ones(total, dtype=torch.bool)
    elif n_keep == 0:
        keep = torch.zeros(total, dtype=torch.bool)
    else:
        thr = float(np.partition(allflat.numpy(), n_prune - 1)[n_prune - 1])
        keep = allflat > thr
        extra = n_keep - int(keep.sum())
        if extra > 0:
            tied = torch.nonzero(allflat == thr).flatten()
            keep[tied[-extra:]] = True
    out, offset = {}, 0
    for n in names:
        k = scores[n].numel()
        out[n] = keep[offset : offset + k].reshape(scores[n].shape)
        offset += k
    return WeightMask(out)


def _run_readme_example(code_edit=lambda c: c):
    text = README.read_text(encoding="utf-8")
    code = text.split("## Usage", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(compile(code_edit(code), str(README), "exec"), scope)
    return scope["pruner"]


def test_readme_example_keeps_every_layer(capsys) -> None:
    """The README example (SEVEN_dyn at 0.8 on a tiny BERT) leaves weights in every target."""
    with pytest.warns(UserWarning, match="would empty .*query"):
        pruner = _run_readme_example()
    capsys.readouterr()
    floor = {n: math.ceil(0.01 * p.numel()) for n, p in pruner.params.items()}
    for name, m in pruner.mask.items():
        assert int(m.sum()) >= floor[name] > 0, name
    assert pruner.mask.num_pruned == math.floor(0.8 * pruner.numel + 0.5) or (
        pruner.achieved_sparsity > 0.79
    )


def test_readme_example_plain_global_empties_query_and_key(capsys) -> None:
    """The README example with min_density=0 (official plain selection) empties query/key, loudly."""
    with pytest.warns(UserWarning, match="min_density=0"):
        pruner = _run_readme_example(
            lambda c: c.replace("window=10)", "window=10, min_density=0.0)")
        )
    capsys.readouterr()
    emptied = [n for n, m in pruner.mask.items() if not bool(m.any())]
    assert emptied and all(("query" in n) or ("key" in n) for n in emptied)


def _config_bert(seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=200,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=32,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(cfg)


@pytest.mark.parametrize("cls", [SevenPruner, MagnitudePruner])
def test_bert_from_config_at_07_keeps_every_layer(cls) -> None:
    """SevenPruner/MagnitudePruner at 0.7 on a BERT built from a config: every target keeps weights."""
    model = _config_bert()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if cls is SevenPruner:
        pruner = cls(model, 0.7, start=0, window=6, final_exact=True)
    else:
        pruner = cls(model, 0.7)
        pruner.prune_before_training()
    torch.manual_seed(1)
    x, y = torch.randint(0, 200, (16, 12)), torch.randint(0, 2, (16,))
    for _ in range(8):
        opt.zero_grad()
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        pruner.step()
    assert abs(pruner.achieved_sparsity - 0.7) < 1e-3
    for name, m in pruner.mask.items():
        assert int(m.sum()) >= math.ceil(0.01 * m.numel()), name
        assert bool((pruner.params[name].detach() != 0).any()), name


@pytest.mark.parametrize("seed", range(6))
def test_cheap_cut_equals_the_old_selection_exactly(seed: int) -> None:
    """select_global (threshold on the alive entries) == the committed selection, ties included."""
    g = torch.Generator().manual_seed(seed)
    scores = {
        "a": torch.randint(0, 5, (7, 9), generator=g).float(),
        "b": torch.randn(13, generator=g),
        "c": torch.randint(0, 3, (4, 4), generator=g).float(),
    }
    prev = WeightMask({n: torch.rand(s.shape, generator=g) > 0.3 for n, s in scores.items()})
    alive = sum(int(m.sum()) for _, m in prev.items())
    for n_keep in (0, 1, 9, alive // 2, alive - 1, alive):
        new = select_global(scores, n_keep, previous=prev, warn=False)
        assert new == _old_select_global(scores, n_keep, prev), n_keep
    for n_keep in (0, 3, 40, 91, 92):
        assert select_global(scores, n_keep, warn=False) == _old_select_global(scores, n_keep)


def test_guard_equals_plain_selection_when_no_tensor_is_below_its_floor() -> None:
    """select_flat: with every tensor above its floor, min_density changes nothing."""
    torch.manual_seed(0)
    flat = torch.rand(300)
    sizes, names = [100, 120, 80], ["a", "b", "c"]
    plain = select_flat(flat, sizes, names, 150, warn=False)
    guarded = select_flat(flat, sizes, names, 150, min_density=0.05, warn=False)
    assert torch.equal(plain, guarded)


def test_guard_lifts_a_collapsed_tensor_and_keeps_the_total_exact() -> None:
    """select_flat: a tensor of tiny scores keeps ceil(d*n) of its best; total kept stays n_keep."""
    torch.manual_seed(0)
    flat = torch.cat([torch.rand(100) + 1, torch.rand(50) * 1e-6, torch.rand(100) + 1])
    sizes, names = [100, 50, 100], ["a", "tiny", "c"]
    with pytest.warns(UserWarning, match="tiny"):
        keep = select_flat(flat, sizes, names, 60, min_density=0.1)
    assert int(keep.sum()) == 60
    tiny = keep[100:150]
    assert int(tiny.sum()) == 5
    # the 5 kept are the tensor's 5 highest scores
    assert set(torch.nonzero(tiny).flatten().tolist()) == set(
        torch.topk(flat[100:150], 5).indices.tolist()
    )
    with pytest.raises(ValueError, match="min_density"):
        select_flat(flat, sizes, names, 20, min_density=0.1)


def test_layer_scope_cuts_every_tensor_to_the_same_sparsity() -> None:
    """scope='layer': every target tensor reaches the target sparsity on its own."""
    model = _config_bert()
    pruner = MagnitudePruner(model, 0.7, scope="layer")
    pruner.prune_before_training()
    for name, m in pruner.mask.items():
        assert abs(1 - m.float().mean().item() - 0.7) < 1 / m.numel() + 1e-9, name
    with pytest.raises(ValueError, match="scope"):
        MagnitudePruner(_config_bert(), 0.7, scope="tensor")


def _old_lift(flat, sizes, alive, n_keep, floors_d, dead_zero):
    """The guard's lifting loop as committed before session 17 (a copy of the whole buffer, each
    lifted tensor's top entries by a stable argsort), on `select_flat`'s plain first selection;
    kept here as the reference."""
    from seven_prune.pruning import _keep_top_flat, _segments

    segs = _segments(sizes)
    keep = _keep_top_flat(flat, alive, n_keep, dead_zero)
    counts = [int(keep[a:b].sum()) for a, b in segs]
    floors = [math.ceil(floors_d * (b - a)) for a, b in segs]
    if alive is not None:
        for i, (a, b) in enumerate(segs):
            if counts[i] < floors[i]:
                floors[i] = min(floors[i], int(alive[a:b].sum()))
    lifted, work = set(), None
    while True:
        below = [i for i, (c, f) in enumerate(zip(counts, floors)) if c < f and i not in lifted]
        if not below:
            return keep
        if work is None:
            work = flat.clone()
        for i in below:
            a, b = segs[i]
            seg = work[a:b]
            vals = seg if alive is None else seg.masked_fill(~alive[a:b], -math.inf)
            seg[torch.argsort(vals, stable=True)[-floors[i] :]] = math.inf
            lifted.add(i)
        keep = _keep_top_flat(work, alive, n_keep, dead_zero)
        counts = [int(keep[a:b].sum()) for a, b in segs]


def _count_reselections(monkeypatch) -> list[bool]:
    """Record, per lifting round, whether `_reselect_from_bracket` gave the selection (True) or
    left it to the full one (False)."""
    from seven_prune import pruning

    real, seen = pruning._reselect_from_bracket, []

    def spy(*args):
        out = real(*args)
        seen.append(out is not None)
        return out

    monkeypatch.setattr(pruning, "_reselect_from_bracket", spy)
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("reselect", [True, False])
def test_guard_lifting_in_place_equals_the_copying_loop_exactly(
    dtype, seed, reselect, monkeypatch
) -> None:
    """select_flat's guard (lifted entries set in the score buffer and put back, each tensor's top
    from a threshold selection, the selection after a lift taken from the first one's bracket)
    == the loop that copied the buffer, argsorted and selected from scratch, ties included, over
    cuts that lift one tensor, several, and in two rounds; the scores come back bit for bit.
    Tensors above 65,536 entries take the sampled threshold path. `reselect=False`: the bracket's
    re-selection is switched off, so every round takes the full selection (its fallback)."""
    from seven_prune import pruning

    if reselect:
        seen = _count_reselections(monkeypatch)
    else:
        monkeypatch.setattr(pruning, "_reselect_from_bracket", lambda *args: None)
    g = torch.Generator().manual_seed(seed)
    sizes = [70_000, 300, 90_000, 500, 40]
    names = [f"t{i}" for i in range(len(sizes))]
    parts = [
        torch.randint(0, 50, (sizes[0],), generator=g).to(dtype) * 0.25,  # many ties
        torch.rand(sizes[1], generator=g, dtype=dtype) * 1e-3,  # collapses
        torch.rand(sizes[2], generator=g, dtype=dtype) + 0.5,
        torch.randint(0, 4, (sizes[3],), generator=g).to(dtype) * 1e-4,  # collapses, ties
        torch.rand(sizes[4], generator=g, dtype=dtype) * 0.3,  # collapses in the second round
    ]
    flat = torch.cat(parts)
    total = flat.numel()
    for alive_p in (None, 0.7):
        alive = None
        if alive_p is not None:
            alive = torch.rand(total, generator=g) < alive_p
            flat = flat.masked_fill(~alive, 0.0)  # a pruner's cut: pruned scores are 0
        n_alive = total if alive is None else int(alive.sum())
        for n_keep in (n_alive // 3, n_alive // 2, (3 * n_alive) // 4):
            for d in (0.05, 0.2):
                before = flat.clone()
                got = select_flat(
                    flat, sizes, names, n_keep, alive, min_density=d, warn=False,
                    dead_zero=alive is not None,
                )  # fmt: skip
                want = _old_lift(flat, sizes, alive, n_keep, d, alive is not None)
                assert torch.equal(got, want), (alive_p, n_keep, d)
                assert int(got.sum()) == n_keep
                bits = torch.int64 if dtype == torch.float64 else torch.int32
                assert torch.equal(flat.view(bits), before.view(bits))
    if reselect:
        assert any(seen)  # the bracket's re-selection was taken (and checked above)


def test_guard_lifting_in_two_rounds_equals_the_copying_loop(monkeypatch) -> None:
    """A tensor above its floor in the plain selection falls below it once another is lifted
    (45 scores just above the plain threshold): a second round lifts it, as the old loop did;
    both rounds re-select from the first selection's bracket."""
    seen = _count_reselections(monkeypatch)
    a = torch.arange(100_000, dtype=torch.float32) / 100_000
    c = torch.cat([torch.full((45,), 0.501), torch.zeros(155)])
    flat = torch.cat([a, torch.full((1000,), 1e-7), c])
    sizes = [100_000, 1000, 200]
    before = flat.clone()
    got = select_flat(flat, sizes, list("abc"), 50_000, min_density=0.2, warn=False)
    assert torch.equal(got, _old_lift(flat, sizes, None, 50_000, 0.2, False))
    assert int(got[101_000:].sum()) == 40  # lifted in the second round (plain: 45 kept)
    assert seen == [True, True]
    assert torch.equal(flat.view(torch.int32), before.view(torch.int32))
