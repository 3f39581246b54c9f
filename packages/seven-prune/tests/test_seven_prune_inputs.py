"""Bad inputs raise clear errors naming the argument, the value and what is allowed."""

import pytest
import torch
from seven_prune import (
    GraspPruner,
    MagnitudePruner,
    PlatonPruner,
    SevenPruner,
    SnipPruner,
    make_pruner,
    sparsity_by_layer_type,
    target_parameters,
)
from seven_prune.models import tiny_bert


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_bert(seed=0)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_sparsity_outside_unit_interval(model, bad) -> None:
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        SevenPruner(model, bad)


def test_sparsity_wrong_type(model) -> None:
    with pytest.raises(TypeError, match="sparsity"):
        SevenPruner(model, "0.5")


@pytest.mark.parametrize(("name", "bad"), [("alpha1", 1.0), ("alpha1", -0.2), ("alpha2", 1.0)])
def test_alpha_outside_unit_interval(model, name, bad) -> None:
    with pytest.raises(
        ValueError, match=rf"{name} must be in \[0, 1\) \(a moment.s decay rate\), got {bad}"
    ):
        SevenPruner(model, 0.5, **{name: bad})


@pytest.mark.parametrize("bad", [0, -3])
def test_window_below_one(model, bad) -> None:
    with pytest.raises(ValueError, match=rf"window must be >= 1, got {bad}"):
        SevenPruner(model, 0.5, window=bad)


def test_other_bad_options(model) -> None:
    with pytest.raises(ValueError, match="mode must be"):
        SevenPruner(model, 0.5, mode="during")
    with pytest.raises(ValueError, match="moments must be"):
        SevenPruner(model, 0.5, moments="raw")
    with pytest.raises(ValueError, match="start must be >= 0"):
        SevenPruner(model, 0.5, start=-1)
    with pytest.raises(ValueError, match="delta_t must be >= 1"):
        SevenPruner(model, 0.5, delta_t=0)
    with pytest.raises(TypeError, match="window must be an int"):
        SevenPruner(model, 0.5, window=2.5)
    with pytest.raises(ValueError, match="beta1"):
        PlatonPruner(model, 0.5, beta1=1.2)
    with pytest.raises(ValueError, match="temperature"):
        GraspPruner(model, 0.5, temperature=0)
    with pytest.raises(ValueError, match="name must be one of"):
        make_pruner("obd", model, 0.5)
    with pytest.raises(TypeError, match="model must be"):
        SevenPruner("bert", 0.5)
    with pytest.raises(TypeError, match="mask must be"):
        sparsity_by_layer_type({"a": torch.ones(2, dtype=torch.bool)})


def test_target_pattern_matching_nothing(model) -> None:
    with pytest.raises(ValueError, match=r"targets='decoder\\\\.' .*match no nn.Linear"):
        SevenPruner(model, 0.5, targets=r"decoder\.")
    with pytest.raises(TypeError, match="targets must be"):
        target_parameters(model, targets=[3])


def test_default_targets_are_encoder_linears_and_pooler(model) -> None:
    names = list(target_parameters(model))
    assert len(names) == 2 * 6 + 1
    assert all(n.endswith(".weight") for n in names)
    assert "bert.pooler.dense.weight" in names
    assert not any("embeddings" in n or "classifier" in n or "LayerNorm" in n for n in names)
    only_ffn = target_parameters(
        model, targets=r"(intermediate|output)\.dense", exclude=r"attention"
    )
    assert len(only_ffn) == 4


def test_step_before_any_backward(model) -> None:
    model.zero_grad(set_to_none=True)
    pruner = SevenPruner(model, 0.5, window=5)
    with pytest.raises(RuntimeError, match=r"no gradients .* after loss\.backward\(\)"):
        pruner.step()
    pruner.remove()
    late = SevenPruner(model, 0.5, start=3, window=5)
    with pytest.raises(RuntimeError, match="no gradients"):
        late.step()
    late.remove()


def test_mode_misuse(model) -> None:
    pre = SevenPruner(model, 0.5, mode="pre", window=2)
    with pytest.raises(RuntimeError, match="prune_before_training"):
        pre.step()
    pre.remove()
    dyn = SevenPruner(model, 0.5)
    with pytest.raises(RuntimeError, match="needs mode='pre'"):
        dyn.prune_before_training([])
    dyn.remove()
    snip = SnipPruner(model, 0.5)
    with pytest.raises(ValueError, match="needs gradient batches"):
        snip.prune_before_training(None)
    with pytest.raises(RuntimeError, match="prune_before_training"):
        snip.step()
    snip.remove()
    mag = MagnitudePruner(model, 0.5)
    with pytest.raises(ValueError, match="yielded no batches"):
        SnipPruner(model, 0.5).prune_before_training([])
    mag.remove()


def _roberta():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    cfg = RobertaConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
    )
    return RobertaForSequenceClassification(cfg)


def _distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    cfg = DistilBertConfig(
        vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=40
    )
    return DistilBertForSequenceClassification(cfg)


@pytest.mark.parametrize("family", ["roberta", "vit", "distilbert"])
def test_default_targets_cover_roberta_vit_and_distilbert(family) -> None:
    """Every encoder block's six Linears, each with a known layer role; heads stay dense."""
    from seven_prune import layer_type
    from seven_prune.models import tiny_vit

    model = {"roberta": _roberta, "vit": lambda: tiny_vit(num_layers=2), "distilbert": _distilbert}[
        family
    ]()
    names = list(target_parameters(model))
    assert len(names) == 2 * 6
    roles = [layer_type(n) for n in names]
    assert sorted(set(roles)) == sorted(["query", "key", "value", "attn_out", "ffn_in", "ffn_out"])
    assert all(roles.count(r) == 2 for r in set(roles))
    assert not any("classifier" in n or "embeddings" in n or "pre_classifier" in n for n in names)
    pruner = SevenPruner(model, 0.5, start=0, window=2, final_exact=True)
    assert set(pruner.sparsity_by_layer_type()) == {*roles, "all"}
    pruner.remove()
