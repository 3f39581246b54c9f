"""Issue 19, session 24b: ``sgs_proj="per_pass_half"``, each BSD direction reads its own half of
the one set of 1x1 projection heads' channels (two heads of half width), so the image branch has
one direction's projection and fusion width and the rung cannot be width."""

from collections.abc import Callable

import pytest
import torch
from ssjdn import SSJDN, SSJDNConfig
from ssjdn.baselines import VARIANTS, ablation_config
from ssjdn.bench import method_key
from ssjdn.diagnostics import pass_overlap, pass_redundancy
from ssjdn.scenes import make_multiscale_scenes

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
NEW = {
    "+bidirectional per-pass half proj": "+bidirectional",
    "BSD per-pass half proj": "+STL (full SSJDN)",
}


def _model(name: str, **kw: object) -> SSJDN:
    data = make_multiscale_scenes(6, image_size=32, seed=0)
    return SSJDN.from_data(data, ablation_config(name, **{**TINY, **kw}), seed=0).double()


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_half_heads_have_the_defaults_projection_and_one_directions_width() -> None:
    """The projection's state equals the default's (same keys and shapes, same draws at the same
    seed); the fusion layer reads one direction's 4 x proj_dim features; the whole model has one
    direction's parameter count plus one SFE bias per scale (8 units of p/2 + 1 vs 4 of p + 1)."""
    half = _model("+bidirectional per-pass half proj")
    shared, one = _model("+bidirectional"), _model("+SGS (one direction)")
    assert half.proj_c2f is None and half.pass_channels == 4 and shared.pass_channels == 8
    sd_half, sd_shared = half.state_dict(), shared.state_dict()
    proj_keys = [k for k in sd_shared if k.startswith("proj.")]
    assert proj_keys == [k for k in sd_half if k.startswith("proj.")]
    assert all(torch.equal(sd_half[k], sd_shared[k]) for k in proj_keys)
    assert _count(half.proj) == _count(shared.proj) == _count(one.proj)
    assert half.bsd.fuse.in_features == one.bsd.fuse.in_features == 4 * 8
    assert shared.bsd.fuse.in_features == 8 * 8
    assert _count(half) == _count(one) + 4
    # the default (shared, two passes) has a fusion layer twice as wide and 8 SFE units of p + 1
    d, p = TINY["embed_dim"], TINY["proj_dim"]
    assert _count(shared) - _count(half) == 4 * p * d + 8 * (p + 1) - 8 * (p // 2 + 1)
    full, full_half = _model("+STL (full SSJDN)"), _model("BSD per-pass half proj")
    assert _count(full) - _count(full_half) == _count(shared) - _count(half)


@torch.no_grad()
def test_half_heads_are_per_pass_heads_of_half_width_stored_as_one_conv() -> None:
    """``per_pass_half`` at proj_dim p computes exactly ``per_pass`` at proj_dim p/2 when its one
    conv holds the two heads stacked (float64)."""
    half = _model("+bidirectional per-pass half proj").eval()
    per = _model("+bidirectional per-pass proj", proj_dim=4).eval()
    for k in range(len(half.proj)):
        a, b = per.proj[k], per.proj_c2f[k]
        half.proj[k].weight.copy_(torch.cat([a.weight, b.weight], dim=0))
        half.proj[k].bias.copy_(torch.cat([a.bias, b.bias], dim=0))
    sd = {k: v for k, v in per.state_dict().items() if not k.startswith(("proj.", "proj_c2f."))}
    half.load_state_dict(sd, strict=False)
    images = make_multiscale_scenes(5, image_size=32, seed=3).images.double()
    va, _ = half.image_features(images)
    vb, _ = per.image_features(images)
    assert torch.allclose(va, vb, atol=1e-12)
    fa, _ = half.bsd.pass_features(half.bsd_inputs(images), images)
    fb, _ = per.bsd.pass_features(per.bsd_inputs(images), images)
    assert all(torch.allclose(x, y, atol=1e-12) for p, q in zip(fa, fb) for x, y in zip(p, q))


@torch.no_grad()
def test_each_pass_reads_only_its_own_half_of_the_channels() -> None:
    """Changing the heads of the second half of the channels changes the coarse->fine pass's
    features and leaves the fine->coarse pass's bit-identical, and the other way round."""
    m = _model("+bidirectional per-pass half proj").eval()
    images = make_multiscale_scenes(4, image_size=32, seed=5).images.double()
    before, _ = m.bsd.pass_features(m.bsd_inputs(images), images)
    h = m.pass_channels
    for own, other, rows in ((1, 0, slice(h, None)), (0, 1, slice(0, h))):
        for conv in m.proj:
            conv.weight[rows] += 0.5
        after, _ = m.bsd.pass_features(m.bsd_inputs(images), images)
        assert all(torch.equal(x, y) for x, y in zip(before[other], after[other]))
        assert not any(torch.allclose(x, y, atol=1e-6) for x, y in zip(before[own], after[own]))
        for conv in m.proj:
            conv.weight[rows] -= 0.5


def test_half_heads_train_both_halves_and_the_probes_read_them() -> None:
    data = make_multiscale_scenes(6, image_size=32, seed=7)
    m = SSJDN.from_data(data, ablation_config("BSD per-pass half proj", **TINY), seed=0)
    m.train()
    v, _ = m.image_features(data.images)
    v.pow(2).sum().backward()
    g = m.proj[0].weight.grad
    assert float(g[:4].abs().sum()) > 0 and float(g[4:].abs().sum()) > 0
    assert set(pass_redundancy(m, data)) == {
        "pass_r2_c2f_from_f2c",
        "pass_r2_f2c_from_c2f",
        "pass_r2_fine_from_coarse",
    }
    assert "sgs_damp_overlap" in pass_overlap(m, data)


def test_half_heads_reach_the_bench_variants_and_are_off_by_default() -> None:
    for name, rung in NEW.items():
        assert VARIANTS[name][0] == rung
        a, b = ablation_config(name).to_dict(), ablation_config(rung).to_dict()
        assert {k for k in a if a[k] != b[k]} == {"sgs_proj"}
        assert a["sgs_proj"] == "per_pass_half" and a["stl_kappa"] == 1.0
        assert method_key(name) != method_key(rung)
    assert SSJDNConfig().sgs_proj == "shared"
    assert method_key("+bidirectional per-pass half proj") != method_key(
        "+bidirectional per-pass proj"
    )


def test_adding_the_value_keeps_the_cached_runs_keys(cached_keys_kept: Callable) -> None:
    """Every method cached on validation seeds 35..39 (s24) keeps its key: the option enters the
    hash only when it is switched on."""
    assert (
        cached_keys_kept(
            "3[5-9]",
            (
                "+SGS (one direction)",
                "+bidirectional",
                "+STL (full SSJDN)",
                "BSD split",
                "+bidirectional split",
                "dual-encoder",
                "AMFMN-style",
            ),
        )
        >= 5
    )


@pytest.mark.parametrize("bad", ["half", "Per_pass_half", 2, None])
def test_bad_value_names_the_argument(bad: object) -> None:
    with pytest.raises(
        ValueError, match="sgs_proj must be 'shared', 'per_pass' or 'per_pass_half'"
    ):
        SSJDNConfig(sgs_proj=bad)  # type: ignore[arg-type]


def test_half_heads_need_two_passes_and_an_even_width() -> None:
    with pytest.raises(ValueError, match="sgs_proj='per_pass_half' needs sgs='both'"):
        SSJDNConfig(sgs="fine_to_coarse", sgs_proj="per_pass_half")
    with pytest.raises(ValueError, match="needs an even proj_dim, got proj_dim=33"):
        SSJDNConfig(proj_dim=33, sgs_proj="per_pass_half")
    with pytest.raises(ValueError, match="sgs_sequence='sequential' needs"):
        SSJDNConfig(sgs_sequence="sequential", sgs_proj="per_pass_half")
