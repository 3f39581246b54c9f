"""Issue 19, twenty-second session: ``sgs_fusion="mean"``, the two BSD directions' pooled features
averaged before one fusion layer of one pass's width."""

import dataclasses

import pytest
import torch
from ssjdn import SSJDN, SSJDNConfig
from ssjdn.baselines import VARIANTS, ablation_config
from ssjdn.diagnostics import pass_interplay
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.ssjdn import BidirectionalScaleDecoupling

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


def _double(d):
    """The same scenes in float64 (every other field kept)."""
    return dataclasses.replace(d, images=d.images.double())


def test_mean_fusion_is_one_layer_over_the_passes_average() -> None:
    """v = W (f^fwd + f^bwd) / 2 + b, exactly (float64); the layer has one pass's input width; the
    passes' contributions add up to v - b; swapping the passes' features leaves v unchanged."""
    d = _double(make_multiscale_scenes(6, 64, seed=10))
    m = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_fusion="mean"), seed=0).double().eval()
    one = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs="fine_to_coarse"), seed=0)
    assert m.bsd.fuse.in_features == one.bsd.fuse.in_features == 4 * 8
    x = d.images
    with torch.no_grad():
        feats = m.backbone(x)
        projected = [m.proj[k](f) for k, f in enumerate(feats)]
        parts, _ = m.bsd.pass_features(projected, x)
        xs = [torch.cat(p, 1) for p in parts]
        assert not torch.allclose(xs[0], xs[1])  # the passes differ, so the test can fail
        v, _ = m.bsd(projected, x)
        w, b = m.bsd.fuse.weight, m.bsd.fuse.bias
        assert torch.allclose(v, 0.5 * (xs[0] + xs[1]) @ w.T + b, atol=1e-12)
        assert not torch.allclose(v, xs[0] @ w.T + b, atol=1e-6)
        u = m.bsd.pass_contributions(parts)
        assert torch.allclose(u[0] + u[1], v - b, atol=1e-12)
        swapped = m.bsd.fuse(torch.stack([xs[1], xs[0]]).mean(0))
        assert torch.allclose(swapped, v, atol=1e-12)
    out = pass_interplay(m, d)
    assert -1.0 <= out["pass_contrib_cos"] <= 1.0


def test_mean_fusion_trains_and_reaches_the_bench_variants() -> None:
    """A loss step changes the one fusion layer; the variants carry the option on their rungs."""
    d = make_multiscale_scenes(6, 64, seed=11)
    m = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_fusion="mean"), seed=0)
    before = m.bsd.fuse.weight.detach().clone()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.train()
    v, _ = m.image_features(d.images)
    v.pow(2).sum().backward()
    opt.step()
    assert not torch.equal(before, m.bsd.fuse.weight)
    for name, rung in (
        ("+bidirectional mean", "+bidirectional"),
        ("BSD mean", "+STL (full SSJDN)"),
    ):
        assert VARIANTS[name][0] == rung
        cfg = ablation_config(name)
        assert cfg.sgs_fusion == "mean" and cfg.sgs == "both" and cfg.stl_kappa == 1.0
    assert ablation_config("+bidirectional").sgs_fusion == "concat"  # off by default


@pytest.mark.parametrize("bad", ["sum", "Mean", 1, None])
def test_mean_fusion_bad_input_names_the_argument(bad) -> None:
    with pytest.raises(ValueError, match="sgs_fusion must be 'concat', 'gate' or 'mean'"):
        SSJDNConfig(sgs_fusion=bad)
    with pytest.raises(ValueError, match="fusion must be 'concat', 'gate' or 'mean'"):
        BidirectionalScaleDecoupling(8, 4, fusion=bad)


@pytest.mark.parametrize("sgs", ["none", "fine_to_coarse", "coarse_to_fine"])
def test_mean_fusion_needs_two_passes(sgs) -> None:
    with pytest.raises(ValueError, match="sgs_fusion='mean' needs sgs='both'"):
        SSJDNConfig(sgs=sgs, sgs_fusion="mean")
    with pytest.raises(ValueError, match="fusion='mean' needs sgs='both'"):
        BidirectionalScaleDecoupling(8, 4, sgs=sgs, fusion="mean")
