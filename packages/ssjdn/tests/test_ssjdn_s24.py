"""Issue 19, twenty-fourth session: ``sgs_pass_scales="split"``, the two BSD directions hand the
fusion layer different scales (the fine->coarse pass the coarse half, the coarse->fine pass the
fine half), so they differ in feature space and not only in where they damp."""

import dataclasses
from collections.abc import Callable

import pytest
import torch
from ssjdn import SSJDN, BidirectionalScaleDecoupling, SSJDNConfig
from ssjdn.baselines import VARIANTS, ablation_config
from ssjdn.bench import method_key
from ssjdn.diagnostics import pass_interplay, pass_redundancy
from ssjdn.scenes import make_multiscale_scenes

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


@torch.no_grad()
def test_split_fuses_each_scale_once_from_the_pass_that_decouples_it(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    """Every pass computes what today's computes (bit-identical); the fusion layer has one
    direction's width and reads [f^fwd_3, f^fwd_4, f^bwd_1, f^bwd_2], exactly."""
    projected, images = bsd_inputs()
    today, split = guide_bsd(), guide_bsd(pass_scales="split")
    one = guide_bsd(sgs="fine_to_coarse")
    assert split.delivered_scales == [[2, 3], [0, 1]]
    assert split.fuse.weight.shape == one.fuse.weight.shape == (5, 6 * 4)
    assert today.fuse.weight.shape == (5, 6 * 8)
    state = {k: v for k, v in today.state_dict().items() if not k.startswith("fuse.")}
    split.load_state_dict(state, strict=False)
    fa, _ = today.pass_features(projected, images)
    fb, _ = split.pass_features(projected, images)
    assert all(torch.equal(x, y) for p, q in zip(fa, fb) for x, y in zip(p, q))
    v, _ = split(projected, images)
    x = torch.cat([fb[0][2], fb[0][3], fb[1][0], fb[1][1]], dim=1)
    assert torch.allclose(v, x @ split.fuse.weight.T + split.fuse.bias, atol=1e-12)
    # the fine->coarse pass's fine half and the coarse->fine pass's coarse half do not reach v
    for p, scale in ((0, 0), (0, 1), (1, 2), (1, 3)):
        unit = split.chains[p][scale].score
        unit.weight.add_(1.0)
        assert torch.allclose(split(projected, images)[0], v, atol=1e-12)
        unit.weight.sub_(1.0)
    split.chains[1][1].score.weight.add_(1.0)  # a delivered scale's SFE unit does
    assert not torch.allclose(split(projected, images)[0], v, atol=1e-6)


@torch.no_grad()
def test_split_contributions_add_up_to_the_fused_vector(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    projected, images = bsd_inputs(seed=4, n=5)
    split = guide_bsd(pass_scales="split")
    feats, _ = split.pass_features(projected, images)
    u0, u1 = split.pass_contributions(feats)
    v, _ = split(projected, images)
    assert torch.allclose(u0 + u1 + split.fuse.bias, v, atol=1e-12)
    dropped = guide_bsd(pass_scales="split")
    dropped.drop_chain = 1
    assert torch.allclose(dropped(projected, images)[0], u0 + split.fuse.bias, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_split_halves_cover_every_scale_once(n: int) -> None:
    bsd = BidirectionalScaleDecoupling(4, n, out_dim=3, pass_scales="split")
    fwd, bwd = bsd.delivered_scales
    assert sorted(fwd + bwd) == list(range(n))
    assert min(fwd) > max(bwd)  # the fine->coarse pass delivers the coarser scales
    assert bsd.fuse.in_features == 4 * n


@torch.no_grad()
def test_split_redundancy_probe_reads_the_delivered_features() -> None:
    """Under the split the probe's R^2 is the fine half of the coarse->fine pass from the coarse
    half of the fine->coarse pass (the new key, computed for today's model too)."""
    d = make_multiscale_scenes(24, 64, seed=21)
    d = dataclasses.replace(d, images=d.images.double())
    today = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0).double().eval()
    split = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_pass_scales="split"), seed=0)
    split = split.double().eval()
    state = {k: v for k, v in today.state_dict().items() if not k.startswith("bsd.fuse.")}
    split.load_state_dict(state, strict=False)
    a, b = pass_redundancy(today, d), pass_redundancy(split, d)
    assert b["pass_r2_c2f_from_f2c"] == b["pass_r2_fine_from_coarse"]
    assert a["pass_r2_fine_from_coarse"] == pytest.approx(b["pass_r2_fine_from_coarse"], abs=1e-9)
    assert a["pass_r2_c2f_from_f2c"] != pytest.approx(b["pass_r2_c2f_from_f2c"], abs=1e-6)
    assert set(pass_interplay(split, d)) == {"pass_feat_cos", "pass_contrib_cos", "pass_cancel"}
    va, _ = today.image_features(d.images)
    vb, _ = split.image_features(d.images)
    assert va.shape == vb.shape and not torch.allclose(va, vb, atol=1e-6)


def test_split_trains_the_delivered_units_only() -> None:
    d = make_multiscale_scenes(6, 64, seed=13)
    m = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_pass_scales="split"), seed=0)
    m.train()
    v, _ = m.image_features(d.images)
    v.pow(2).sum().backward()
    for p, scale in ((0, 2), (0, 3), (1, 0), (1, 1)):
        g = m.bsd.chains[p][scale].score.weight.grad
        assert g is not None and float(g.abs().sum()) > 0
    assert m.bsd.chains[0][1].score.weight.grad is None  # pooled, not delivered
    assert float(m.proj[0].weight.grad.abs().sum()) > 0  # the finest scale still reaches v


def test_split_reaches_the_bench_variants_and_is_off_by_default() -> None:
    for name, rung in (
        ("+bidirectional split", "+bidirectional"),
        ("BSD split", "+STL (full SSJDN)"),
    ):
        assert VARIANTS[name][0] == rung
        cfg = ablation_config(name)
        assert cfg.sgs_pass_scales == "split" and cfg.sgs == "both" and cfg.stl_kappa == 1.0
        assert method_key(name) != method_key(rung)
    assert SSJDNConfig().sgs_pass_scales == "all"
    assert ablation_config("+bidirectional").sgs_pass_scales == "all"


def test_adding_the_option_keeps_the_cached_runs_keys(cached_keys_kept: Callable) -> None:
    """The cache's file names hold each method's key: every method cached on validation seeds
    30..34 (s23) keeps its key with the option at its neutral value."""
    assert (
        cached_keys_kept(
            "3[0-4]",
            ("+SGS (one direction)", "+bidirectional", "+STL (full SSJDN)", "BSD complement"),
        )
        >= 3
    )


@pytest.mark.parametrize("bad", ["Split", "halves", 1, None])
def test_split_bad_value_names_the_argument(bad: object, guide_bsd: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_pass_scales must be 'all' or 'split', got"):
        SSJDNConfig(sgs_pass_scales=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass_scales must be 'all' or 'split', got"):
        guide_bsd(pass_scales=bad)


def test_split_needs_two_passes_and_the_concatenation(guide_bsd: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_pass_scales='split' needs sgs='both'"):
        SSJDNConfig(sgs="fine_to_coarse", sgs_pass_scales="split")
    with pytest.raises(ValueError, match="sgs_fusion='concat', got sgs='both', sgs_fusion='mean'"):
        SSJDNConfig(sgs_fusion="mean", sgs_pass_scales="split")
    with pytest.raises(ValueError, match="pass_scales='split' needs sgs='both'"):
        guide_bsd(sgs="coarse_to_fine", pass_scales="split")
    with pytest.raises(ValueError, match="fusion='gate'"):
        guide_bsd(fusion="gate", pass_scales="split")
