"""Issue 19, twenty-third session: ``sgs_guide_c2f="complement"``, guides that disagree. The
coarse->fine pass takes the fine->coarse pass's guide (the finest scale's salience) with the
opposite polarity, so it damps exactly where the first pass keeps."""

import dataclasses
from collections.abc import Callable

import pytest
import torch
from ssjdn import SSJDN, SSJDNConfig
from ssjdn.baselines import VARIANTS, ablation_config
from ssjdn.bench import method_key
from ssjdn.diagnostics import pass_overlap
from ssjdn.scenes import make_multiscale_scenes

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


@torch.no_grad()
@pytest.mark.parametrize("beta", [1.0, 0.6])
def test_complement_damps_exactly_where_the_first_pass_keeps(
    beta: float, guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    """The first pass is bit-identical to today's; both passes' guide is the finest scale's; at
    every size the two passes' damping adds up to beta (M^bwd = 1 - M^fwd at beta 1); the second
    pass's coarsest (guiding) scale is not multiplied, its finest scale pools P * M^bwd."""
    projected, images = bsd_inputs()
    today, comp = guide_bsd(beta=beta), guide_bsd(beta=beta, guide_c2f="complement")
    comp.load_state_dict(today.state_dict())
    assert comp.pass_polarities == ["keep_salient", "suppress_salient"]
    fa, ma = today.pass_features(projected, images)
    fb, mb = comp.pass_features(projected, images)
    assert all(torch.equal(x, y) for x, y in zip(fa[0], fb[0]))
    guides = comp.pass_guides(mb, images)
    assert torch.equal(guides[0], guides[1])
    assert today.pass_guides(ma, images)[1].shape[-2:] == (2, 2)  # today: the coarsest grid
    assert guides[1].shape[-2:] == (16, 16)  # complement: the finest grid
    for size in ((16, 16), (8, 8), (4, 4)):
        m0, m1 = comp.suppression(guides[0], size, 0), comp.suppression(guides[1], size, 1)
        assert torch.allclose((1 - m0) + (1 - m1), torch.full_like(m0, beta), atol=1e-12)
        assert m0.std() > 0.05  # a map that varies, so the identity above can fail
    assert torch.equal(fa[1][3], fb[1][3])  # the coarsest scale guides the pass, unmultiplied
    m1 = comp.suppression(guides[0], (16, 16), 1)
    _, expect = comp.chains[1][0](projected[0] * m1)
    assert torch.allclose(fb[1][0], expect, atol=1e-12)
    assert not torch.allclose(fa[1][0], fb[1][0])


@torch.no_grad()
def test_complement_changes_the_model_and_the_overlap_probe_sees_it() -> None:
    """With the same weights the image vectors change; the probe's two maps are exact
    complements (Pearson -1, and at beta 1 no place damped by both beyond min(d, 1 - d))."""
    d = make_multiscale_scenes(6, 64, seed=12)
    d = dataclasses.replace(d, images=d.images.double())
    today = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0).double().eval()
    comp = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_guide_c2f="complement"), seed=0)
    comp = comp.double().eval()
    comp.load_state_dict(today.state_dict())
    va, _ = today.image_features(d.images)
    vb, _ = comp.image_features(d.images)
    assert not torch.allclose(va, vb, atol=1e-6)
    out, base = pass_overlap(comp, d), pass_overlap(today, d)
    assert out["sgs_map_corr"] == pytest.approx(-1.0, abs=1e-6)
    assert base["sgs_map_corr"] > -0.9
    assert out["sgs_damp_mean_p0"] + out["sgs_damp_mean_p1"] == pytest.approx(1.0, abs=1e-9)


def test_complement_trains_the_second_pass() -> None:
    """A loss step reaches the second pass's SFE units (its maps are not constant)."""
    d = make_multiscale_scenes(6, 64, seed=13)
    m = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_guide_c2f="complement"), seed=0)
    m.train()
    v, _ = m.image_features(d.images)
    v.pow(2).sum().backward()
    g = m.bsd.chains[1][0].score.weight.grad
    assert g is not None and float(g.abs().sum()) > 0


def test_complement_reaches_the_bench_variants_and_is_off_by_default() -> None:
    for name, rung in (
        ("+bidirectional complement", "+bidirectional"),
        ("BSD complement", "+STL (full SSJDN)"),
    ):
        assert VARIANTS[name][0] == rung
        cfg = ablation_config(name)
        assert cfg.sgs_guide_c2f == "complement" and cfg.sgs == "both" and cfg.stl_kappa == 1.0
        assert method_key(name) != method_key(rung)
    assert SSJDNConfig().sgs_guide_c2f == "same"
    assert ablation_config("+bidirectional").sgs_guide_c2f == "same"


@pytest.mark.parametrize("bad", ["complementary", "Complement", 1, None])
def test_complement_bad_value_names_the_argument(bad: object, guide_bsd: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_guide_c2f must be 'same', 'f2c_salience' or"):
        SSJDNConfig(sgs_guide_c2f=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="guide_c2f must be 'same', 'f2c_salience' or"):
        guide_bsd(guide_c2f=bad)


def test_complement_needs_two_guided_passes_and_its_own_polarity(guide_bsd: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_guide_c2f='complement' needs sgs='both'"):
        SSJDNConfig(sgs="fine_to_coarse", sgs_guide_c2f="complement")
    with pytest.raises(ValueError, match="needs sgs_polarity_c2f='same'"):
        SSJDNConfig(sgs_guide_c2f="complement", sgs_polarity_c2f="suppress_salient")
    with pytest.raises(ValueError, match="needs polarity_c2f='same'"):
        guide_bsd(guide_c2f="complement", polarity_c2f="keep_salient")
