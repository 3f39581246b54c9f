"""Issue 19, nineteenth and twentieth sessions: readings of the bidirectional pattern and their
input checks. Session 19: ``sgs_proj="per_pass"`` (each direction its own projection heads) and
``sgs_guide_c2f="f2c_salience"`` (the coarse->fine pass guided by the fine->coarse pass's
coarsest SFE map). Session 20, aimed at the second pass's redundancy: ``sgs_sequence=
"sequential"`` (the coarse->fine pass reads the fine->coarse pass's suppressed output) and
``sgs_decorrelate`` (a penalty on the batch cross-correlation of the passes' pooled features)."""

import math
from collections.abc import Callable

import pytest
import torch
from ssjdn import SSJDN, BidirectionalScaleDecoupling, SSJDNConfig, ablation_config
from ssjdn.bench import method_key
from ssjdn.diagnostics import linear_r2, pass_overlap, pass_redundancy
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.ssjdn import cross_correlation_penalty

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
NEW = {
    "+bidirectional per-pass proj": ("+bidirectional", "sgs_proj"),
    "+LSD per-pass proj": ("+LSD", "sgs_proj"),
    "BSD per-pass proj": ("+STL (full SSJDN)", "sgs_proj"),
    "+bidirectional f2c guide": ("+bidirectional", "sgs_guide_c2f"),
    "+LSD f2c guide": ("+LSD", "sgs_guide_c2f"),
    "BSD f2c guide": ("+STL (full SSJDN)", "sgs_guide_c2f"),
    "+SGS proj 64 (one direction)": ("+SGS (one direction)", "proj_dim"),
}

NEW_S20 = {
    "+bidirectional sequential": ("+bidirectional", "sgs_sequence"),
    "BSD sequential": ("+STL (full SSJDN)", "sgs_sequence"),
    "+bidirectional decorrelated": ("+bidirectional", "sgs_decorrelate"),
    "BSD decorrelated": ("+STL (full SSJDN)", "sgs_decorrelate"),
}


def test_options_are_checked(guide_bsd: Callable, bsd_inputs: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_proj must be"):
        SSJDNConfig(sgs_proj="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sgs_proj='per_pass' needs sgs='both'"):
        SSJDNConfig(sgs="fine_to_coarse", sgs_proj="per_pass")
    with pytest.raises(ValueError, match="sgs_guide_c2f must be"):
        SSJDNConfig(sgs_guide_c2f="learned")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sgs_guide_c2f='f2c_salience' needs"):
        SSJDNConfig(sgs="fine_to_coarse", sgs_guide_c2f="f2c_salience")
    with pytest.raises(ValueError, match="guide_c2f must be"):
        BidirectionalScaleDecoupling(4, guide_c2f="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs sgs='both' and scope='guide'"):
        BidirectionalScaleDecoupling(4, scope="chain", guide_c2f="f2c_salience")
    projected, images = bsd_inputs()
    with pytest.raises(ValueError, match="one list per pass"):
        guide_bsd().pass_features([projected, projected, projected], images)


@torch.no_grad()
def test_f2c_guide_hands_the_first_passs_coarsest_map_to_the_second(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    """The first pass is bit-identical to today's; the second pass's guiding (coarsest) scale
    is not multiplied; its other scales are multiplied by exactly the stretched last map of the
    first pass (beta 1, keep_salient: M = A), which the overlap probe reads as its guide."""
    projected, images = bsd_inputs()
    today, f2c = guide_bsd(), guide_bsd(guide_c2f="f2c_salience")
    f2c.load_state_dict(today.state_dict())
    fa, ma = today.pass_features(projected, images)
    fb, mb = f2c.pass_features(projected, images)
    assert all(torch.equal(x, y) for x, y in zip(fa[0], fb[0]))
    assert torch.equal(fa[1][3], fb[1][3])
    guide = mb[0][-1]
    assert torch.equal(f2c.pass_guides(mb, images)[1], guide)
    m = f2c.suppression(guide, (16, 16), 1)
    lo, hi = guide.amin(dim=(2, 3), keepdim=True), guide.amax(dim=(2, 3), keepdim=True)
    up = torch.nn.functional.interpolate(guide, size=(16, 16), mode="bilinear")
    assert torch.allclose(m, (up - lo) / (hi - lo), atol=1e-12)
    _, expect = f2c.chains[1][0](projected[0] * m)
    assert torch.allclose(fb[1][0], expect, atol=1e-12)
    assert not torch.allclose(fa[1][0], fb[1][0])


def test_per_pass_projection_builds_only_when_asked_and_copies_reproduce_shared() -> None:
    """Defaults: no extra module, state-dict keys and cache keys unchanged. per_pass: a second
    set of heads built last (every other weight equals the shared model's at the same seed); with
    its heads copied from the first set, the model's image vectors equal the shared model's
    exactly; the variants differ from their rungs in the named option only."""
    data = make_multiscale_scenes(6, image_size=32, seed=0)
    shared = SSJDN.from_data(data, ablation_config("+bidirectional", **TINY), seed=0).double()
    per = SSJDN.from_data(
        data, ablation_config("+bidirectional per-pass proj", **TINY), seed=0
    ).double()
    assert shared.proj_c2f is None and not any("proj_c2f" in k for k in shared.state_dict())
    sd_per = per.state_dict()
    assert all(torch.equal(v, sd_per[k]) for k, v in shared.state_dict().items())
    images = data.images[:4].double()
    per.eval(), shared.eval()
    with torch.no_grad():
        assert not torch.allclose(per.image_features(images)[0], shared.image_features(images)[0])
        per.proj_c2f.load_state_dict(per.proj.state_dict())
        assert torch.allclose(
            per.image_features(images)[0], shared.image_features(images)[0], atol=1e-12
        )
    for name, (rung, option) in NEW.items():
        a, b = ablation_config(name).to_dict(), ablation_config(rung).to_dict()
        assert {k for k in a if a[k] != b[k]} == {option}
        assert method_key(name) != method_key(rung)
    # today's methods keep their committed keys (the options enter the hash only when on)
    assert method_key("+bidirectional") == "82536e30" and method_key("+LSD") == "3c36b854"
    # the overlap and redundancy probes read a model with its own heads per pass
    per.float()
    assert set(pass_overlap(per, data)) >= {"sgs_damp_mean_p1", "sgs_map_corr"}
    r = pass_redundancy(per, data)
    assert set(r) == {"pass_r2_c2f_from_f2c", "pass_r2_f2c_from_c2f", "pass_r2_fine_from_coarse"}


def test_linear_r2_reads_linear_dependence_and_rejects_bad_shapes() -> None:
    """A linear function of x scores ~1, independent noise ~0 or below, a half-and-half mix
    in between."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 6, generator=g, dtype=torch.float64)
    noise = torch.randn(200, 3, generator=g, dtype=torch.float64)
    lin = x[:, :3] @ torch.randn(3, 3, generator=g, dtype=torch.float64) + 2.0
    assert linear_r2(x, lin, ridge=1e-9) > 0.999999
    assert linear_r2(x, noise) < 0.05
    assert 0.3 < linear_r2(x, lin / lin.std(0) + noise) < 0.7
    with pytest.raises(ValueError, match="x and y must be"):
        linear_r2(x, noise[:10])


def test_s20_options_are_checked() -> None:
    with pytest.raises(ValueError, match="sgs_sequence must be"):
        SSJDNConfig(sgs_sequence="serial")  # type: ignore[arg-type]
    for bad in (
        {"sgs": "fine_to_coarse"},
        {"sgs_proj": "per_pass"},
        {"sgs_pool": "residual"},
        {"sgs_target": "salience"},
    ):
        with pytest.raises(ValueError, match="sgs_sequence='sequential' needs"):
            # on the pooling it needs (the default is "centered" since s25)
            SSJDNConfig(sgs_sequence="sequential", **{"sgs_pool": "multiply", **bad})  # type: ignore[arg-type]
    SSJDNConfig(sgs_sequence="sequential", sgs_pool="multiply")
    for lam in (-0.1, math.nan, math.inf, "1", True):
        with pytest.raises(ValueError, match="sgs_decorrelate must be"):
            SSJDNConfig(sgs_decorrelate=lam)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sgs_decorrelate > 0 needs sgs='both'"):
        SSJDNConfig(sgs="fine_to_coarse", sgs_decorrelate=1.0)
    with pytest.raises(ValueError, match="sequence must be"):
        BidirectionalScaleDecoupling(4, sequence="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sequence='sequential' needs"):
        BidirectionalScaleDecoupling(4, sgs="coarse_to_fine", sequence="sequential")
    with pytest.raises(ValueError, match="decorrelate must be"):
        BidirectionalScaleDecoupling(4, decorrelate=-1.0)
    with pytest.raises(ValueError, match="decorrelate > 0 needs sgs='both'"):
        BidirectionalScaleDecoupling(4, sgs="none", decorrelate=0.5)
    with pytest.raises(ValueError, match="x and y must be"):
        cross_correlation_penalty(torch.zeros(4, 2), torch.zeros(3, 2))


@torch.no_grad()
def test_sequential_second_pass_reads_the_first_passs_suppressed_output(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    """The first pass is bit-identical to the parallel one; the second pass's guiding (coarsest)
    scale pools the first pass's suppressed coarsest map, and every other scale that map times
    its own SGS map (the finest scale, the first pass's guide, only its own)."""
    projected, images = bsd_inputs()
    par, seq = guide_bsd(), guide_bsd(sequence="sequential")
    seq.load_state_dict(par.state_dict())
    fa, ma = par.pass_features(projected, images)
    fb, mb = seq.pass_features(projected, images)
    assert all(torch.equal(x, y) for x, y in zip(fa[0], fb[0]))
    g0, g1 = seq.pass_guides(mb, images)
    m1 = [None] + [seq.suppression(g0, p.shape[2:], 0) for p in projected[1:]]
    first_out = [p if m is None else p * m for p, m in zip(projected, m1)]
    _, expect = seq.chains[1][3](first_out[3])
    assert torch.allclose(fb[1][3], expect, atol=1e-12)
    for i in range(3):
        m2 = seq.suppression(g1, projected[i].shape[2:], 1)
        _, expect = seq.chains[1][i](first_out[i] * m2)
        assert torch.allclose(fb[1][i], expect, atol=1e-12)
    assert not torch.allclose(fa[1][3], fb[1][3])
    assert torch.allclose(fa[1][0], fb[1][0], atol=1e-12)  # finest: untouched by the first pass


def test_cross_correlation_penalty_reads_linear_dependence() -> None:
    """Exactly the mean squared cross-correlation; ~1 for a copy, near 0 for independent noise,
    0 for one image."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(400, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(400, 2, generator=g, dtype=torch.float64)
    c = torch.corrcoef(torch.cat([x, noise], dim=1).T)[:3, 3:]
    assert torch.allclose(cross_correlation_penalty(x, noise), c.pow(2).mean(), atol=1e-9)
    assert cross_correlation_penalty(x, noise) < 0.01
    assert cross_correlation_penalty(x[:, :1], -2.0 * x[:, :1] + 1.0) > 0.9999
    assert cross_correlation_penalty(x[:1], noise[:1]) == 0


def test_decorrelation_penalty_is_trained_on_the_second_pass_only(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    """In training mode the forward pass keeps lambda * penalty (None in eval mode or at 0); its
    gradient reaches the second pass's SFE units and not the first's (detached), and
    `SSJDN.loss` adds it to every pair."""
    projected, images = bsd_inputs(n=6)
    bsd = guide_bsd(decorrelate=0.5).train()
    bsd(projected, images)
    feats, _ = bsd.pass_features(projected, images)
    want = 0.5 * cross_correlation_penalty(torch.cat(feats[0], 1), torch.cat(feats[1], 1))
    assert torch.allclose(bsd.penalty, want, atol=1e-12)
    bsd.penalty.backward()
    assert all(u.score.weight.grad is None for u in bsd.chains[0])
    assert any(u.score.weight.grad.abs().sum() > 0 for u in bsd.chains[1])
    bsd.eval()
    bsd(projected, images)
    assert bsd.penalty is None
    assert guide_bsd().train()(projected, images) is not None and guide_bsd().penalty is None

    data = make_multiscale_scenes(8, image_size=32, seed=0)
    model = SSJDN.from_data(data, ablation_config("BSD decorrelated", **TINY), seed=0).train()
    ids, mask = model.text.tokenize([c[0] for c in data.captions])
    out = model(data.images, ids, mask)
    assert out["bsd_penalty"].ndim == 0 and out["bsd_penalty"] > 0
    labels, image_ids = torch.as_tensor(data.labels), torch.arange(8)
    with_pen = model.loss(out, labels, image_ids)
    without = model.loss({k: v for k, v in out.items() if k != "bsd_penalty"}, labels, image_ids)
    assert torch.allclose(with_pen - without, out["bsd_penalty"].expand(8))


def test_variants_differ_in_their_option_only_and_add_no_weights() -> None:
    data = make_multiscale_scenes(6, image_size=32, seed=0)
    today = SSJDN.from_data(data, ablation_config("+bidirectional", **TINY), seed=0)
    for name, (rung, option) in NEW_S20.items():
        a, b = ablation_config(name).to_dict(), ablation_config(rung).to_dict()
        assert {k for k in a if a[k] != b[k]} == {option}
        assert method_key(name) != method_key(rung)
        if rung == "+bidirectional":
            other = SSJDN.from_data(data, ablation_config(name, **TINY), seed=0)
            sd, sd_other = today.state_dict(), other.state_dict()
            assert sd.keys() == sd_other.keys()
            assert all(torch.equal(v, sd_other[k]) for k, v in sd.items())
    assert method_key("+bidirectional") == "82536e30" and method_key("STL kappa 1") == "4b56e987"
