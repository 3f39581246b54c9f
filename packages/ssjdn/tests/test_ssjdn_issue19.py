"""Issue 19's fixes and probes: SGS polarity and the diagnostics (SFE contrast and the LSD gate
were retired on 2026-12-05, at commit e375864)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ssjdn import SSJDN, SSJDNConfig, salience_suppression
from ssjdn.diagnostics import pass_interplay, semantic_reach, suppression_focus, twin_masks
from ssjdn.metrics import retrieval_metrics
from ssjdn.scenes import make_multiscale_scenes

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


def test_keep_salient_damps_the_non_salient_places() -> None:
    """polarity="keep_salient": M = (1 - beta) + beta * A, the complement of the first reading's
    damping, so the salient place is kept and the others are damped by beta."""
    a = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    a[0, 0, 1, 2] = 0.8
    a[1, 0, 3, 0] = 0.3
    sup = salience_suppression(a, (4, 4), beta=0.6)
    keep = salience_suppression(a, (4, 4), beta=0.6, polarity="keep_salient")
    assert torch.allclose(keep, 1 - 0.6 * (1 - a), atol=0, rtol=0)
    assert torch.allclose((1 - sup) + (1 - keep), torch.full_like(a, 0.6), atol=1e-15)
    stretched = salience_suppression(a, (4, 4), beta=0.6, polarity="keep_salient", normalize=True)
    assert float(stretched[0, 0, 1, 2]) == 1.0 and float(stretched[0, 0, 0, 0]) == 0.4


def test_config_options_reach_the_model() -> None:
    """sgs_polarity reaches BSD and changes the outputs."""
    d = make_multiscale_scenes(6, 32, seed=0)
    base = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_polarity="suppress_salient"), seed=0)
    keep = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_polarity="keep_salient"), seed=0)
    assert keep.bsd.polarity == "keep_salient"
    with torch.no_grad():
        v0 = base.image_features(d.images)[0]
        assert not torch.allclose(keep.image_features(d.images)[0], v0)


def test_twin_masks_find_the_small_objects() -> None:
    """twin_masks: every image of a twin-only draw gets a non-empty mask covering a small share
    of the image, and the mask is the same for both twins (they share the placement)."""
    d = make_multiscale_scenes(20, 64, seed=3, twin_fraction=1.0)
    idx, masks = twin_masks(d)
    assert list(idx) == list(range(20)) and masks.shape == (20, 64, 64)
    share = masks.float().mean((1, 2))
    assert bool((share > 0).all()) and float(share.max()) < 0.04
    flat = d.images.flatten(1)
    twin = torch.cdist(flat, flat, p=1).fill_diagonal_(float("inf")).argmin(1)
    assert torch.equal(masks, masks[twin])
    with pytest.raises(ValueError, match="no twin images"):
        twin_masks(make_multiscale_scenes(6, 32, seed=0, twin_fraction=0.0))


def test_pass_interplay_detects_duplicate_and_cancelling_passes() -> None:
    """Without SFE and suppression both passes pool the same features (cosine 1); with the
    second pass's fusion block the negative of the first's they cancel exactly (pass_cancel 0).
    Under ``sgs_pool="multiply"`` (pinned: with "centered", today's default, a flat map hands
    over the kept mean minus the plain mean, i.e. zeros, at the scales SGS acts on)."""
    d = make_multiscale_scenes(8, 32, seed=1)
    cfg = SSJDNConfig(**TINY, sfe=False, sgs_beta=0.0, sgs_pool="multiply")
    m = SSJDN.from_data(d, cfg, seed=0).double()
    data = type(d)(d.images.double(), d.captions, d.labels, d.class_names)
    out = pass_interplay(m, data)
    assert out["pass_feat_cos"] == pytest.approx(1.0, abs=1e-12)
    with torch.no_grad():
        w = m.bsd.fuse.weight
        half = w.shape[1] // 2
        w[:, half:] = w[:, :half]
    out = pass_interplay(m, data)
    assert out["pass_contrib_cos"] == pytest.approx(1.0, abs=1e-12)
    assert out["pass_cancel"] == pytest.approx(1.0, abs=1e-12)
    with torch.no_grad():
        w[:, half:] = -w[:, :half]
    out = pass_interplay(m, data)
    assert out["pass_cancel"] == pytest.approx(0.0, abs=1e-12)
    assert out["pass_contrib_cos"] == pytest.approx(-1.0, abs=1e-12)


def test_suppression_focus_sees_a_map_that_marks_the_small_objects() -> None:
    """A salience map equal to the small-object mask has a large positive contrast there and
    SGS ("suppress_salient") damps the small objects more than the rest; "keep_salient" less."""
    d = make_multiscale_scenes(10, 64, seed=2, twin_fraction=1.0)
    _, masks = twin_masks(d)
    out = {}
    for polarity in ("suppress_salient", "keep_salient"):
        cfg = SSJDNConfig(**TINY, sgs_polarity=polarity, sgs_guide="learned", sgs_beta=0.5)
        m = SSJDN.from_data(d, cfg, seed=0)
        # the finest scale's salience: exactly the mask, pooled to its resolution
        planted = F.avg_pool2d(masks[:, None].float(), 2)
        unit = m.bsd.chains[0][0]
        unit.forward = lambda p, suppress=None, _a=planted: (_a[: p.shape[0]], p.mean((2, 3)))
        out[polarity] = suppression_focus(m, d)
    assert out["suppress_salient"]["small_z_p0_s1"] > 3
    assert out["suppress_salient"]["damp_small_ratio"] > 2
    assert out["keep_salient"]["damp_small_ratio"] < 0.5


def test_semantic_reach_splits_the_similarity() -> None:
    """semantic_reach: ranking by the residual part alone is ranking by cos(v, t), and the
    variance share lies in [0, 1]."""
    d = make_multiscale_scenes(12, 32, seed=4)
    m = SSJDN.from_data(d, SSJDNConfig(**TINY, lsd_mix=0.5), seed=0).eval()
    out = semantic_reach(m, d)
    with torch.no_grad():
        v = F.normalize(m.image_features(d.images)[0], dim=-1)
        t = F.normalize(m.text(*m.text.tokenize(d.flat_captions)), dim=-1)
    expect = retrieval_metrics(v @ t.T, d.caption_image)["mR"]
    assert out["mR_residual_only"] == pytest.approx(expect, abs=1e-9)
    assert 0.0 <= out["sem_var_share"] <= 1.0
    assert np.isfinite(out["mR_semantic_only"])
    with pytest.raises(ValueError, match="no concatenated LSD"):
        semantic_reach(SSJDN.from_data(d, SSJDNConfig(**TINY, lsd=False), seed=0), d)


def _scene_with_objects() -> torch.Tensor:
    """A 32 x 32 float64 image: a uniform ground, two 2 x 2 px red objects on the stride-2 grid
    (cells (4, 5) and (11, 12) of the 16 x 16 grid) and a 12 x 12 px red field (cells 3..8 x
    9..14)."""
    x = torch.empty(1, 3, 32, 32, dtype=torch.float64)
    x[:] = torch.tensor([0.4, 0.6, 0.3], dtype=torch.float64).view(1, 3, 1, 1)
    red = torch.tensor([0.9, 0.1, 0.1], dtype=torch.float64).view(3, 1, 1)
    for r, c in ((4, 5), (11, 12)):
        x[0, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = red
    x[0, :, 6:18, 18:30] = red
    return x


def test_local_contrast_marks_one_cell_objects_exactly() -> None:
    """local_contrast_salience at the 16 x 16 grid (3 x 3 cells): exactly 1 on the two small
    objects, 1/8 on their eight neighbours, 0 on the uniform ground and in the large field's
    interior, and at most 5/8 on the large field's border (its corners)."""
    from ssjdn import local_contrast_salience

    a = local_contrast_salience(_scene_with_objects(), (16, 16), kernel=3)[0, 0]
    expect = torch.zeros(16, 16, dtype=torch.float64)
    for r, c in ((4, 5), (11, 12)):
        expect[r - 1 : r + 2, c - 1 : c + 2] = 1 / 8
        expect[r, c] = 1.0
    field = torch.zeros(16, 16, dtype=torch.bool)
    field[2:10, 8:16] = True  # the field (cells 3..8 x 9..14) and the ring of cells around it
    assert torch.allclose(a[~field], expect[~field], atol=1e-12, rtol=0)
    assert torch.allclose(a[4:8, 11:13], torch.zeros(4, 2, dtype=torch.float64), atol=1e-12)
    assert float(a[field].max()) == pytest.approx(5 / 8, abs=1e-12)
    top = set(torch.topk(a.flatten(), 2).indices.tolist())
    assert top == {4 * 16 + 5, 11 * 16 + 12}


def test_contrast_guide_localises_the_small_objects() -> None:
    """sgs_guide="contrast": the map SGS multiplies onto the coarser scales is the local contrast
    on the finest grid, so on the constructed scene the suppression of scale 2 is strongest
    exactly at the small objects' cells; on twin scenes the guide's contrast on the small objects
    (located by the twins) is large and SGS damps them several times more than the rest, where
    the learned guide at initialisation is blind to them."""
    d = make_multiscale_scenes(12, 64, seed=2, twin_fraction=1.0)
    cfg = SSJDNConfig(
        **TINY,
        sgs="fine_to_coarse",
        sgs_guide="learned",
        sgs_polarity="suppress_salient",
        sgs_beta=0.5,
    )
    learned = SSJDN.from_data(d, cfg, seed=0)
    contrast = SSJDN.from_data(d, SSJDNConfig(**{**cfg.to_dict(), "sgs_guide": "contrast"}), seed=0)
    assert contrast.bsd.guide == "contrast" and learned.bsd.guide == "learned"
    x = _scene_with_objects()
    with torch.no_grad():
        m = contrast.double().eval()
        _, maps = m.image_features(x)
        guide = m.bsd.guide_salience(maps[0][0], x)
        sup = m.bsd.suppression(guide, (16, 16))[0, 0]  # scale 2's grid is 8 x 8; same grid here
    assert torch.allclose(guide, local_contrast(x), atol=0, rtol=0)
    assert set(torch.topk(-sup.flatten(), 2).indices.tolist()) == {4 * 16 + 5, 11 * 16 + 12}
    assert float(sup.min()) == pytest.approx(0.5, abs=1e-12)  # 1 - beta at the objects
    focus = {name: suppression_focus(mdl.float(), d) for name, mdl in (("l", learned), ("c", m))}
    assert focus["c"]["guide_z_p0"] > 3 and focus["c"]["damp_small_ratio"] > 3
    assert abs(focus["l"]["guide_z_p0"]) < 1
    with torch.no_grad():  # the guide changes what the coarser scales pool
        assert not torch.allclose(
            learned.image_features(d.images)[0], contrast.float().image_features(d.images)[0]
        )


def local_contrast(x: torch.Tensor) -> torch.Tensor:
    from ssjdn import local_contrast_salience

    return local_contrast_salience(x, (16, 16), 3)
