"""Issue 19, twenty-fifth session: ``sgs_pool="centered"``, a scale that SGS acts on hands the
fusion layer only what the places its map keeps hold beyond the scale's image-wide mean; each
pass's guiding scale delivers its own SFE feature."""

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ssjdn import SSJDN, SSJDNConfig
from ssjdn.baselines import VARIANTS, ablation_config
from ssjdn.bench import cache_stem, method_key
from ssjdn.diagnostics import pass_interplay, pass_redundancy
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.ssjdn import centered_kept

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


def test_centered_kept_is_the_kept_mean_minus_the_plain_mean() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.rand(2, 1, 3, 4, generator=g, dtype=torch.float64)
    m = torch.rand(2, 1, 3, 4, generator=g, dtype=torch.float64)
    p = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64)
    out = centered_kept(a, p, m)
    for b in range(2):
        w = [float(a[b, 0, y, x] * m[b, 0, y, x]) for y in range(3) for x in range(4)]
        for c in range(5):
            vals = [float(p[b, c, y, x]) for y in range(3) for x in range(4)]
            kept = sum(wi * vi for wi, vi in zip(w, vals)) / sum(w)
            assert float(out[b, c]) == pytest.approx(kept - sum(vals) / 12, abs=1e-12)
    # a constant a M: the kept mean is the plain mean, nothing is handed over
    flat = torch.full_like(a, 0.3)
    assert torch.allclose(centered_kept(flat, p, flat), torch.zeros(2, 5, dtype=p.dtype))
    # a map that keeps nothing (hard SGS): zeros, not the negated mean
    assert torch.equal(centered_kept(a, p, torch.zeros_like(m)), torch.zeros(2, 5, dtype=p.dtype))


@pytest.mark.parametrize(
    "shapes",
    [((2, 1, 3, 3), (2, 4, 3, 4), (2, 1, 3, 4)), ((2, 1, 3, 4), (2, 4, 3, 4), (1, 1, 3, 4))],
)
def test_centered_kept_refuses_mismatched_maps(shapes) -> None:
    a, p, m = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match="must have shape"):
        centered_kept(a, p, m)


def test_centered_kept_refuses_maps_that_are_not_4d() -> None:
    a, p, m = torch.zeros(2, 1, 3, 4), torch.zeros(2, 4, 3, 4), torch.zeros(2, 1, 3, 4)
    for args in ((a[:, 0], p, m), (a, p[:, :, 0], m), (a, p, m[:, 0])):
        with pytest.raises(ValueError, match="must be 4-d"):
            centered_kept(*args)


@torch.no_grad()
def test_centered_keeps_the_guide_and_hands_over_the_kept_deviation(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    """Same weights as today's BSD: each pass's guiding scale delivers today's feature exactly;
    every other scale j delivers f_j * sum a / sum a M - mean P_j (today's f_j rescaled to the
    kept places' mean, the plain mean subtracted), with a and M the pass's own maps."""
    projected, images = bsd_inputs(seed=2, n=4)
    today, cen = guide_bsd(), guide_bsd(pool="centered")
    cen.load_state_dict(today.state_dict())
    assert cen.fuse.weight.shape == today.fuse.weight.shape  # one scale's width per slot
    fa, maps = today.pass_features(projected, images)
    fb, maps_b = cen.pass_features(projected, images)
    guides = today.pass_guides(maps, images)
    for k, order in enumerate(today.orders):
        g = order[0]
        assert torch.equal(fa[k][g], fb[k][g])
        for pos, j in enumerate(order[1:], start=1):
            a = maps[k][pos]
            assert torch.equal(a, maps_b[k][pos])  # SFE reads the same suppressed maps
            m = today.suppression(guides[k], projected[j].shape[2:], k)
            rescale = a.sum((2, 3)) / (a * m).sum((2, 3))
            want = fa[k][j] * rescale - projected[j].mean((2, 3))
            assert torch.allclose(fb[k][j], want, atol=1e-12)
    v, _ = cen(projected, images)
    x = torch.cat([f for chain in fb for f in chain], dim=1)
    assert torch.allclose(v, x @ cen.fuse.weight.T + cen.fuse.bias, atol=1e-12)


@torch.no_grad()
def test_centered_separates_passes_that_pool_a_shared_component(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    """The mechanism the reading is for: on projected maps dominated by one vector shared by
    every place, today's two passes hand over near-copies at every scale, the centered ones do
    not at the scales SGS acts on in both passes (scales 2 and 3 of 4)."""
    projected, images = bsd_inputs(seed=5, n=6)
    g = torch.Generator().manual_seed(9)
    shared = 5.0 * torch.randn(6, 6, 1, 1, generator=g, dtype=torch.float64)
    projected = [shared + 0.3 * p for p in projected]
    today, cen = guide_bsd(), guide_bsd(pool="centered")
    cen.load_state_dict(today.state_dict())
    fa, _ = today.pass_features(projected, images)
    fb, _ = cen.pass_features(projected, images)
    for j in (1, 2):
        assert float(F.cosine_similarity(fa[0][j], fa[1][j]).min()) > 0.99
        assert float(F.cosine_similarity(fb[0][j], fb[1][j]).mean()) < 0.9


def test_centered_trains_every_sfe_unit_and_the_projection() -> None:
    d = make_multiscale_scenes(6, 64, seed=13)
    m = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_pool="centered"), seed=0)
    m.train()
    v, _ = m.image_features(d.images)
    v.pow(2).sum().backward()
    for chain in m.bsd.chains:
        for unit in chain:
            assert unit.score.weight.grad is not None
            assert float(unit.score.weight.grad.abs().sum()) > 0
    assert float(m.proj[0].weight.grad.abs().sum()) > 0


@torch.no_grad()
def test_centered_model_probes_and_changes_the_image_vector() -> None:
    d = make_multiscale_scenes(24, 64, seed=21)
    d = dataclasses.replace(d, images=d.images.double())
    today = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_pool="multiply"), seed=0).double().eval()
    cen = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_pool="centered"), seed=0).double().eval()
    cen.load_state_dict(today.state_dict())
    assert set(pass_redundancy(cen, d)) == set(pass_redundancy(today, d))
    assert set(pass_interplay(cen, d)) == {"pass_feat_cos", "pass_contrib_cos", "pass_cancel"}
    va, _ = today.image_features(d.images)
    vb, _ = cen.image_features(d.images)
    assert va.shape == vb.shape and not torch.allclose(va, vb, atol=1e-6)


def test_centered_reaches_the_bench_variants_and_is_the_default() -> None:
    for name, rung in (
        ("+bidirectional centered", "+bidirectional"),
        ("BSD centered", "+STL (full SSJDN)"),
    ):
        assert VARIANTS[name][0] == rung
        cfg = ablation_config(name)
        assert cfg.sgs_pool == "centered" and cfg.sgs == "both" and cfg.stl_kappa == 1.0
        assert dataclasses.replace(cfg, sgs_pool="multiply") == ablation_config(rung)
        assert method_key(name) != method_key(rung)
    assert SSJDNConfig().sgs_pool == "centered"  # the default since the s25 decision
    assert ablation_config("+bidirectional").sgs_pool == "multiply"  # the rung as measured


def test_adding_the_value_keeps_the_cached_runs_keys(cached_keys_kept: Callable) -> None:
    """Every method cached on validation seeds 40..44 (s24b) keeps its key."""
    methods = ("+SGS (one direction)", "+bidirectional", "+STL (full SSJDN)", "dual-encoder")
    assert cached_keys_kept("4[0-4]", methods) == 4


@pytest.mark.parametrize("bad", ["Centered", "center", 1, None])
def test_centered_bad_value_names_the_argument(bad: object, guide_bsd: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_pool must be 'multiply' or 'centered'"):
        SSJDNConfig(sgs_pool=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pool must be 'multiply' or 'centered'"):
        guide_bsd(pool=bad)


def test_centered_needs_sgs_on_the_features(guide_bsd: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_pool='centered' needs sgs_target='features'"):
        SSJDNConfig(sgs_pool="centered", sgs_target="salience")
    with pytest.raises(ValueError, match="pool='centered' needs target='features'"):
        guide_bsd(pool="centered", target="salience")


def test_rule_s25_reads_the_centered_pool_on_seeds_45_to_49(
    tmp_path, capsys, write_val_runs: Callable
) -> None:
    base = [10.0, 11.0, 12.0, 10.5, 11.5]
    runs = {
        "+SGS (one direction)": base,
        "+bidirectional centered": [v + 1.0 + 0.1 * i for i, v in enumerate(base)],
        "+STL (full SSJDN)": base,
        "BSD centered": [v - 0.3 for v in base],
    }
    folder = write_val_runs(tmp_path, runs, range(45, 50))
    assert decide.main(["--rule", "s25", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "decision: sgs_pool='centered'" in out
    assert "B2 fails" in out and "not adopted" in out
    for name in ("BSD centered", "+STL (full SSJDN)"):  # B1 alone (stage 1b not run)
        for f in folder.glob(f"{cache_stem(name, 45).split('__')[0]}__*"):
            f.unlink()
    assert decide.main(["--rule", "s25", "--cache", str(tmp_path)]) == 0
    assert "partial (B2 lacks seeds)" in capsys.readouterr().out
