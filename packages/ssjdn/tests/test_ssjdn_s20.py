"""Issue 19, twentieth session: two readings aimed at the second BSD pass's redundancy,
``sgs_sequence="sequential"`` (the coarse->fine pass reads the fine->coarse pass's suppressed
output) and ``sgs_decorrelate`` (a penalty on the batch cross-correlation of the passes' pooled
features), and their input checks."""

import math

import pytest
import torch
from ssjdn import SSJDN, BidirectionalScaleDecoupling, SSJDNConfig, ablation_config
from ssjdn.bench import method_key
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.ssjdn import cross_correlation_penalty

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
NEW = {
    "+bidirectional sequential": ("+bidirectional", "sgs_sequence"),
    "BSD sequential": ("+STL (full SSJDN)", "sgs_sequence"),
    "+bidirectional decorrelated": ("+bidirectional", "sgs_decorrelate"),
    "BSD decorrelated": ("+STL (full SSJDN)", "sgs_decorrelate"),
}


def _bsd(**kw: object) -> BidirectionalScaleDecoupling:
    torch.manual_seed(0)
    return BidirectionalScaleDecoupling(
        6,
        sgs="both",
        beta=1.0,
        out_dim=5,
        scope="guide",
        normalize=True,
        polarity="keep_salient",
        guide="contrast",
        **kw,  # type: ignore[arg-type]
    ).double()


def _inputs(seed: int = 1, n: int = 3) -> tuple[list[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g, dtype=torch.float64)
    projected = [torch.randn(n, 6, s, s, generator=g, dtype=torch.float64) for s in (16, 8, 4, 2)]
    return projected, images


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="sgs_sequence must be"):
        SSJDNConfig(sgs_sequence="serial")  # type: ignore[arg-type]
    for bad in (
        {"sgs": "fine_to_coarse"},
        {"sgs_proj": "per_pass"},
        {"sgs_pool": "residual"},
        {"sgs_target": "salience"},
    ):
        with pytest.raises(ValueError, match="sgs_sequence='sequential' needs"):
            SSJDNConfig(sgs_sequence="sequential", **bad)  # type: ignore[arg-type]
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
def test_sequential_second_pass_reads_the_first_passs_suppressed_output() -> None:
    """The first pass is bit-identical to the parallel one; the second pass's guiding (coarsest)
    scale pools the first pass's suppressed coarsest map, and every other scale that map times
    its own SGS map (the finest scale, the first pass's guide, only its own)."""
    projected, images = _inputs()
    par, seq = _bsd(), _bsd(sequence="sequential")
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


def test_decorrelation_penalty_is_trained_on_the_second_pass_only() -> None:
    """In training mode the forward pass keeps lambda * penalty (None in eval mode or at 0); its
    gradient reaches the second pass's SFE units and not the first's (detached), and
    `SSJDN.loss` adds it to every pair."""
    projected, images = _inputs(n=6)
    bsd = _bsd(decorrelate=0.5).train()
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
    assert _bsd().train()(projected, images) is not None and _bsd().penalty is None

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
    for name, (rung, option) in NEW.items():
        a, b = ablation_config(name).to_dict(), ablation_config(rung).to_dict()
        assert {k for k in a if a[k] != b[k]} == {option}
        assert method_key(name) != method_key(rung)
        if rung == "+bidirectional":
            other = SSJDN.from_data(data, ablation_config(name, **TINY), seed=0)
            sd, sd_other = today.state_dict(), other.state_dict()
            assert sd.keys() == sd_other.keys()
            assert all(torch.equal(v, sd_other[k]) for k, v in sd.items())
    assert method_key("+bidirectional") == "82536e30" and method_key("STL kappa 1") == "4b56e987"
