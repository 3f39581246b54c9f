"""Issue 19, fifth pass: ``sgs_pool="residual"`` (each scale keeps its own pooled feature and SGS
delivers what the guide's places hold beyond it) and its input checks."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ssjdn import BidirectionalScaleDecoupling, SSJDNConfig, ablation_config
from ssjdn.bench import method_key
from ssjdn.diagnostics import sgs_effect
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.ssjdn import guided_residual

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
CACHE = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "cache"


def test_guided_residual_is_the_kept_places_mean_minus_the_pooled_feature() -> None:
    """d = sum a M P / sum a M - sum a P / sum a, exactly, on a hand-made 2 x 2 map."""
    p = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]], [[2.0, 0.0], [0.0, 2.0]]]], dtype=torch.float64)
    a = torch.tensor([[[[1.0, 1.0], [0.5, 0.5]]]], dtype=torch.float64)
    m = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)  # keeps the top-left place
    f = (a * p).sum((2, 3)) / a.sum((2, 3))  # [ (1+3+2.5+3.5)/3, (2+0+0+1)/3 ] = [10/3, 1]
    d = guided_residual(a, p, f, m)
    assert torch.allclose(d, torch.tensor([[1.0 - 10 / 3, 2.0 - 1.0]], dtype=torch.float64))
    # a map that keeps every place alike (any constant) adds nothing; no map, or one that keeps
    # nothing, neither (not -f, which a division by a clamped zero would give)
    for const in (1.0, 0.3):
        assert torch.allclose(guided_residual(a, p, f, torch.full_like(m, const)), 0 * f)
    assert torch.equal(guided_residual(a, p, f, None), torch.zeros_like(f))
    assert torch.equal(guided_residual(a, p, f, torch.zeros_like(m)), torch.zeros_like(f))
    with pytest.raises(ValueError, match="suppress must have shape"):
        guided_residual(a, p, f, torch.ones(1, 1, 3, 3, dtype=torch.float64))


def test_sgs_pool_is_checked() -> None:
    with pytest.raises(ValueError, match="sgs_pool must be"):
        SSJDNConfig(sgs_pool="add")
    with pytest.raises(ValueError, match="sgs_pool='residual' needs sgs_target='features'"):
        SSJDNConfig(sgs_pool="residual", sgs_target="salience")
    with pytest.raises(ValueError, match="pool must be"):
        BidirectionalScaleDecoupling(4, pool="sum")
    with pytest.raises(ValueError, match="pool='residual' needs target='features'"):
        BidirectionalScaleDecoupling(4, pool="residual", target="salience")


def _inputs() -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 32, 32, generator=g, dtype=torch.float64)
    sizes = (16, 8, 4, 2)
    # a large shared part at every place, as the trained projections have, plus place detail
    projected = [
        5.0 + 0.2 * torch.randn(3, 6, s, s, generator=g, dtype=torch.float64) for s in sizes
    ]
    return projected, images


@torch.no_grad()
def test_residual_keeps_each_scales_own_feature_and_adds_the_guides_clue(
    guide_bsd: Callable,
) -> None:
    """Every scale delivers [f_j ; d_j]: f_j is the plain SFE pooling (SGS leaves it alone), d_j is
    0 at the guiding scale and with beta = 0 (M = 1), and differs between the passes elsewhere;
    the multiplied reading instead only rescales the same mean-dominated vector."""
    projected, images = _inputs()
    res, mul = guide_bsd(pool="residual"), guide_bsd(pool="multiply")
    assert res.fuse.in_features == 2 * mul.fuse.in_features == 2 * 2 * 4 * 6
    mul.load_state_dict(
        {k: v for k, v in res.state_dict().items() if not k.startswith("fuse")}, strict=False
    )
    feats, _ = res.pass_features(projected, images)
    plain = [
        [unit(projected[i])[1] for i, unit in enumerate(units)] for units in res.chains
    ]  # SFE without SGS, per pass (scale order)
    for p, order in enumerate(res.orders):
        guide = order[0]
        for j in range(4):
            assert feats[p][j].shape == (3, 12)
            assert torch.allclose(feats[p][j][:, :6], plain[p][j], atol=1e-12)
        assert torch.equal(feats[p][guide][:, 6:], torch.zeros(3, 6, dtype=torch.float64))
        assert all(float(feats[p][j][:, 6:].abs().max()) > 1e-3 for j in order[1:])
    # scales 1 and 2 are acted on by both passes, with different maps: the clues differ
    for j in (1, 2):
        assert not torch.allclose(feats[0][j][:, 6:], feats[1][j][:, 6:], atol=1e-3)
    flat = guide_bsd(pool="residual", beta=0.0).pass_features(projected, images)[0]
    assert all(
        torch.equal(f[:, 6:], torch.zeros(3, 6, dtype=torch.float64)) for c in flat for f in c
    )
    # the multiplied reading on the same inputs: the pooled feature barely turns
    mf, _ = mul.pass_features(projected, images)
    cos = F.cosine_similarity(mf[0][2], plain[0][2], dim=1)
    assert float(cos.min()) > 0.99
    v, maps = res(projected, images)
    assert v.shape == (3, 5) and len(maps) == 2


def test_residual_model_trains_a_step_and_sgs_effect_reads_it() -> None:
    """The option reaches the model (fusion width), a loss step runs, and the probe of SGS's
    effect (cosine of a scale's feature with / without SGS) sees that it turns the feature."""
    data = make_multiscale_scenes(8, image_size=32, seed=0)
    from ssjdn import SSJDN

    model = SSJDN.from_data(data, ablation_config("SGS residual", **TINY), seed=0)
    assert model.config.sgs_pool == "residual"
    assert model.bsd.fuse.in_features == 2 * 2 * 4 * 8
    out = sgs_effect(model, data)
    assert 0.0 < out["sgs_dir_cos_p0"] < 1.0 and 0.0 < out["sgs_dir_cos_p1"] < 1.0


def test_residual_variants_and_cache_keys() -> None:
    """The three variants switch only sgs_pool; the option enters the cache key only when on, so
    the cached runs of today's rungs stay valid."""
    for name, rung in [
        ("+SGS residual (one direction)", "+SGS (one direction)"),
        ("+bidirectional residual", "+bidirectional"),
        ("SGS residual", "+STL (full SSJDN)"),
    ]:
        # (measured with kappa 0.5, which the variants pin since the kappa switch)
        a, b = ablation_config(name).to_dict(), ablation_config(rung, stl_kappa=0.5).to_dict()
        assert {k for k in a if a[k] != b[k]} == {"sgs_pool"}
    key = method_key("+STL (full SSJDN)")
    if CACHE.is_dir():  # the committed validation/test runs of the full model use this key
        assert any(f"__{key}__" in p.name for p in CACHE.rglob("*.json*"))
