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
