"""WeightMask, prunable_parameters and MaskedTraining."""

import copy
import math
import pickle

import pytest
import torch
from maskloop import MaskedTraining, WeightMask, filter_names, prunable_parameters
from torch import nn


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    )


def magnitude(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().abs() for n, p in prunable_parameters(model).items()}


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.77, 0.99])
def test_global_sparsity_is_exact(sparsity: float) -> None:
    scores = magnitude(small_cnn())
    mask = WeightMask.from_scores(scores, sparsity, min_density=0)  # plain selection
    n = sum(s.numel() for s in scores.values())
    assert mask.num_pruned == math.floor(sparsity * n + 0.5)
    assert mask.numel == n
    # the pruned entries are exactly the lowest scores
    allscores = torch.cat([s.flatten() for s in scores.values()])
    allkeep = torch.cat([mask[k].flatten() for k in scores])
    if mask.num_pruned:
        assert allscores[~allkeep].max() <= allscores[allkeep].min()


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_layer_sparsity_is_exact_per_tensor(sparsity: float) -> None:
    scores = magnitude(small_cnn())
    mask = WeightMask.from_scores(scores, sparsity, scope="layer")
    for name, s in scores.items():
        assert int((~mask[name]).sum()) == math.floor(sparsity * s.numel() + 0.5)


def test_ties_are_broken_deterministically() -> None:
    scores = {"a": torch.zeros(10), "b": torch.zeros(6)}
    mask = WeightMask.from_scores(scores, 0.5)
    assert mask.num_pruned == 8
    # all tied: the earliest positions (in mapping order, then flat order) are pruned first
    assert not mask["a"][:8].any()
    assert mask["a"][8:].all() and mask["b"].all()
    again = WeightMask.from_scores(scores, 0.5)
    assert again == mask
    layer = WeightMask.from_scores(scores, 0.5, scope="layer")
    assert int((~layer["a"]).sum()) == 5 and int((~layer["b"]).sum()) == 3


def test_previous_pruned_stay_pruned() -> None:
    scores = {"w": torch.arange(10.0)}
    first = WeightMask.from_scores(scores, 0.3)  # prunes 0, 1, 2
    reversed_scores = {"w": -torch.arange(10.0)}  # would now prune the top
    second = WeightMask.from_scores(reversed_scores, 0.5, previous=first)
    assert not second["w"][:3].any()
    assert second.num_pruned == 5
    assert (second & first) == second


def test_apply_zeroes_and_keeps_state_dict_keys_deepcopy_pickle() -> None:
    model = small_cnn()
    keys = list(model.state_dict())
    mask = WeightMask.from_scores(magnitude(model), 0.6)
    mask.apply_(model)
    assert list(model.state_dict()) == keys
    for name, p in model.named_parameters():
        if name in mask:
            assert torch.all(p[~mask[name]] == 0)
            assert isinstance(p, nn.Parameter) and p.is_leaf
    with MaskedTraining(model, mask):
        clone = copy.deepcopy(model)
        restored = pickle.loads(pickle.dumps(model))
        assert list(clone.state_dict()) == keys
        assert list(restored.state_dict()) == keys
        x = torch.randn(2, 1, 6, 6)
        torch.testing.assert_close(clone(x), model(x))
        torch.testing.assert_close(restored(x), model(x))


def test_save_load_roundtrip(tmp_path) -> None:
    mask = WeightMask.from_scores(magnitude(small_cnn()), 0.8)
    path = mask.save(tmp_path / "mask.safetensors")
    loaded = WeightMask.load(path)
    assert loaded == mask
    assert loaded.names == mask.names
    state = mask.state_dict()
    other = WeightMask.dense(prunable_parameters(small_cnn()))
    other.load_state_dict(state)
    assert other == mask


def test_load_rejects_foreign_file(tmp_path) -> None:
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a maskloop WeightMask"):
        WeightMask.load(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError):
        WeightMask.load(tmp_path / "missing.safetensors")


def _train_masked(opt_factory, steps: int = 20) -> tuple[nn.Module, WeightMask]:
    model = small_cnn()
    opt = opt_factory(model.parameters())
    # Build optimizer state *before* masking so momentum would revive weights without the guard.
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    mask = WeightMask.from_scores(magnitude(model), 0.7)
    guard = MaskedTraining(model, mask, optimizer=opt).attach()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(8, 1, 6, 6)), y).backward()
        for name, p in model.named_parameters():
            if name in mask:
                assert torch.all(p.grad[~mask[name]] == 0)
        opt.step()
        for name, p in model.named_parameters():
            if name in mask:
                assert torch.all(p[~mask[name]] == 0), name
    guard.remove()
    return model, mask


@pytest.mark.parametrize(
    "opt_factory",
    [
        lambda p: torch.optim.Adam(p, lr=1e-2),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    ],
    ids=["adam", "adamw", "sgd-momentum-wd"],
)
def test_masked_weights_stay_exactly_zero(opt_factory) -> None:
    model, mask = _train_masked(opt_factory)
    # kept weights did train
    assert any((p[mask[n]] != 0).all() for n, p in model.named_parameters() if n in mask)


def test_reapply_without_optimizer_hook() -> None:
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad()
    model(torch.randn(4, 1, 6, 6)).sum().backward()
    opt.step()
    mask = WeightMask.from_scores(magnitude(model), 0.5)
    guard = MaskedTraining(model, mask).attach()
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(4, 1, 6, 6)).sum().backward()
        opt.step()
        guard.reapply()
    for n, p in model.named_parameters():
        if n in mask:
            assert torch.all(p[~mask[n]] == 0)


def test_remove_detaches_hooks() -> None:
    model = small_cnn()
    mask = WeightMask.from_scores(magnitude(model), 0.5)
    guard = MaskedTraining(model, mask).attach()
    guard.remove()
    model(torch.randn(2, 1, 6, 6)).sum().backward()
    w = model[3].weight
    assert (w.grad[~mask["3.weight"]] != 0).any()


def test_prunable_parameters_selection() -> None:
    model = small_cnn()
    assert list(prunable_parameters(model)) == ["0.weight", "3.weight", "5.weight"]
    assert "0.bias" in prunable_parameters(model, include_bias=True)
    assert list(prunable_parameters(model, types=(nn.Linear,))) == ["3.weight", "5.weight"]
    assert list(prunable_parameters(model, exclude=r"^5\.")) == ["0.weight", "3.weight"]
    assert list(prunable_parameters(model, include=[r"^3\."])) == ["3.weight"]


def test_filter_names_selects_like_prunable_parameters() -> None:
    names = ["0.weight", "3.weight", "3.bias", "5.weight"]
    assert filter_names(names) == names
    assert filter_names(names, exclude=r"^5\.") == ["0.weight", "3.weight", "3.bias"]
    assert filter_names(names, include=r"weight$", exclude=[r"^0\.", r"^5\."]) == ["3.weight"]
    with pytest.raises(TypeError, match="exclude must be a regex string"):
        filter_names(names, exclude=[3])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        filter_names(names, include="(")


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_from_scores_rejects_bad_sparsity(bad: float) -> None:
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        WeightMask.from_scores({"w": torch.rand(4)}, bad)


def test_bad_inputs_raise_clear_errors() -> None:
    model = small_cnn()
    with pytest.raises(TypeError, match="sparsity must be a real number"):
        WeightMask.from_scores({"w": torch.rand(4)}, "0.5")
    with pytest.raises(ValueError, match="scope must be"):
        WeightMask.from_scores({"w": torch.rand(4)}, 0.5, scope="row")
    with pytest.raises(ValueError, match="NaN"):
        WeightMask.from_scores({"w": torch.tensor([1.0, float("nan")])}, 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        WeightMask.from_scores({}, 0.5)
    with pytest.raises(TypeError, match="dtype torch.bool"):
        WeightMask({"w": torch.ones(3)})
    with pytest.raises(ValueError, match="does not have"):
        WeightMask({"nope.weight": torch.ones(3, dtype=torch.bool)}).apply_(model)
    with pytest.raises(ValueError, match="shape"):
        WeightMask({"3.weight": torch.ones(3, 3, dtype=torch.bool)}).apply_(model)
    with pytest.raises(ValueError, match="no prunable parameters"):
        prunable_parameters(nn.ReLU())
    with pytest.raises(ValueError, match="not a valid regular expression"):
        prunable_parameters(model, include="(")
    a = WeightMask({"a": torch.ones(2, dtype=torch.bool)})
    b = WeightMask({"b": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="different parameters"):
        _ = a & b
    with pytest.raises(TypeError, match="mask must be a WeightMask"):
        MaskedTraining(model, {"a": 1})


def readme_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def test_default_guard_keeps_every_layer_of_the_readme_example_with_exact_sparsity() -> None:
    scores = magnitude(readme_mlp())
    plain = WeightMask.from_scores(scores, 0.9, min_density=0)
    assert not plain["2.weight"].any()  # the unguarded selection empties the output layer
    with pytest.warns(UserWarning, match=r"would have emptied '2\.weight'.*min_density=0"):
        mask = WeightMask.from_scores(scores, 0.9)
    assert mask.num_pruned == math.floor(0.9 * mask.numel + 0.5)  # still exact
    assert int(mask["2.weight"].sum()) == math.ceil(0.01 * 1280)  # the floor, from its top scores
    top = scores["2.weight"].flatten().argsort(descending=True)[:13]
    assert mask["2.weight"].flatten()[top].all()
    # the rest of the budget is the global ranking of the other entries
    rest = WeightMask.from_scores(
        {"0.weight": scores["0.weight"]}, 1 - (947 - 13) / 8192, min_density=0
    )
    assert torch.equal(mask["0.weight"], rest["0.weight"])


def test_guard_changes_nothing_when_no_tensor_is_short() -> None:
    scores = magnitude(small_cnn())
    for s in (0.3, 0.8):
        assert WeightMask.from_scores(scores, s) == WeightMask.from_scores(scores, s, min_density=0)
    guarded = WeightMask.from_scores(scores, 0.5, min_density=0.45)
    assert all(int(m.sum()) >= math.ceil(0.45 * m.numel()) for _, m in guarded.items())
    assert guarded.num_pruned == math.floor(0.5 * guarded.numel + 0.5)


def test_guard_limits_and_bad_values() -> None:
    scores = magnitude(small_cnn())
    with pytest.raises(ValueError, match="min_density=0.5 keeps .* more than"):
        WeightMask.from_scores(scores, 0.9, min_density=0.5)
    with pytest.raises(ValueError, match="min_density must be in"):
        WeightMask.from_scores(scores, 0.9, min_density=1.0)
    # the default relaxes to one entry per tensor when 1% floors do not fit
    tiny = {"a": torch.arange(1000.0) + 10, "b": torch.arange(300.0)}
    with pytest.warns(UserWarning, match="'b'"):
        m = WeightMask.from_scores(tiny, 0.995)
    assert int(m["b"].sum()) == 1 and m.num_pruned == 1294
    with pytest.raises(ValueError, match="fewer than the 2 tensors"):
        WeightMask.from_scores(tiny, 0.9995)
    # a tensor that previous already emptied cannot be revived (and is not warned about)
    prev = WeightMask(
        {"a": torch.ones(1000, dtype=torch.bool), "b": torch.zeros(300, dtype=torch.bool)}
    )
    again = WeightMask.from_scores(tiny, 0.5, previous=prev)
    assert not again["b"].any()


def test_layer_scope_guard_keeps_a_floor_in_an_emptied_tensor() -> None:
    scores = {"big": torch.rand(200), "small": torch.rand(4)}
    with pytest.warns(UserWarning, match="'small'"):
        m = WeightMask.from_scores(scores, 0.9, scope="layer")
    assert int(m["small"].sum()) == 1 and int((~m["big"]).sum()) == 180
