"""Multiscale scenes with twins, SGS guided by one scale, the AMFMN-style peer."""

import pytest
import torch
from ssjdn import SSJDN, BidirectionalScaleDecoupling, SSJDNConfig, train_retrieval
from ssjdn.amfmn import AMFMNStyle, amfmn_config, guided_similarity
from ssjdn.scenes import SMALL_KINDS, make_multiscale_scenes

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


def test_multiscale_scenes_twins_differ_only_in_the_small_group() -> None:
    d = make_multiscale_scenes(40, 64, seed=3, twin_fraction=1.0)
    assert d.images.shape == (40, 3, 64, 64) and d.image_small.all()
    # pair every image with its twin: same label, same large-object captions, few differing pixels
    small = d.caption_small.reshape(40, 5)
    large_caps = [
        tuple(c for c, s in zip(caps, small[i]) if not s) for i, caps in enumerate(d.captions)
    ]
    pairs = {}
    for i, key in enumerate(large_caps):
        pairs.setdefault((key, int(d.labels[i])), []).append(i)
    assert all(len(v) == 2 for v in pairs.values()) and len(pairs) == 20
    for a, b in pairs.values():
        diff = (d.images[a] - d.images[b]).abs().sum(0) > 1e-6
        assert 0 < int(diff.sum()) < 0.04 * 64 * 64  # only the small group's pixels differ
        small_a = [c for c, s in zip(d.captions[a], small[a]) if s]
        small_b = [c for c, s in zip(d.captions[b], small[b]) if s]
        assert small_a != small_b  # small-object captions tell the twins apart
    # each caption names one scale: small captions say "small", the others do not
    for caps, flags in zip(d.captions, small):
        for c, f in zip(caps, flags):
            assert (" small " in c) == bool(f), c
            assert f == any(k in c.lower() for k in ("small",))


def test_multiscale_scenes_small_captions_count_and_kinds() -> None:
    d = make_multiscale_scenes(20, 64, seed=1, twin_fraction=0.0, small_captions=3)
    assert not d.image_small.any()
    assert (d.caption_small.reshape(20, 5).sum(1) == 3).all()
    words = " ".join(d.flat_captions).lower()
    assert any(k in words for k in SMALL_KINDS)
    with pytest.raises(ValueError, match="twin_fraction"):
        make_multiscale_scenes(10, 64, twin_fraction=1.5)
    with pytest.raises(ValueError, match="image_size"):
        make_multiscale_scenes(10, 16)


def test_sgs_guide_scope_uses_one_scale_for_all_others() -> None:
    torch.manual_seed(0)
    bsd = BidirectionalScaleDecoupling(4, 4, sgs="fine_to_coarse", beta=1.0, scope="guide")
    maps = [torch.randn(1, 4, s, s) for s in (16, 8, 4, 2)]
    _, (chain,) = bsd(maps)
    # scale 3's input was suppressed by scale 0's salience, not scale 2's
    a0 = chain[0]
    m = 1.0 - torch.nn.functional.interpolate(a0, size=(2, 2), mode="bilinear", align_corners=False)
    a3, _ = bsd.chains[0][3](maps[3] * m)
    assert torch.allclose(chain[3], a3)
    chained = BidirectionalScaleDecoupling(4, 4, sgs="fine_to_coarse", beta=1.0, scope="chain")
    chained.load_state_dict(bsd.state_dict())
    _, (c2,) = chained(maps)
    assert not torch.allclose(c2[3], a3)
    with pytest.raises(ValueError, match="scope"):
        BidirectionalScaleDecoupling(4, 4, scope="everywhere")  # type: ignore[arg-type]


def test_guided_similarity_equals_pairwise_cosine() -> None:
    g = torch.Generator().manual_seed(0)
    v, gate = torch.randn(3, 5, generator=g), torch.rand(3, 5, generator=g)
    t = torch.randn(4, 5, generator=g)
    s = guided_similarity(v, gate, t)
    for i in range(3):
        for j in range(4):
            ref = torch.nn.functional.cosine_similarity(v[i], t[j] * gate[i], dim=0)
            assert torch.allclose(s[i, j], ref, atol=1e-6)


def test_amfmn_style_trains_and_reloads(tmp_path) -> None:
    d = make_multiscale_scenes(16, 32, seed=0)
    model = AMFMNStyle.from_data(d, amfmn_config(**TINY), seed=0)
    hist = train_retrieval(model, d, epochs=2, batch_size=8, eval_data=d, progress=False)
    assert len(hist.metrics) == 2 and 0 <= hist.metrics[-1]["mR"] <= 100
    sims = model.similarity(d.images[:3], d.flat_captions[:4])
    assert sims.shape == (3, 4) and sims.abs().max() <= 1 + 1e-5
    model.save(tmp_path / "m")
    again = AMFMNStyle.load(tmp_path / "m")
    assert torch.equal(again.similarity(d.images[:3], d.flat_captions[:4]), sims)
    with pytest.raises(ValueError, match="load it with AMFMNStyle.load"):
        SSJDN.load(tmp_path / "m")
    with pytest.raises(ValueError, match="AMFMNStyle needs"):
        AMFMNStyle.from_data(d, SSJDNConfig(**TINY), seed=0)


def test_sgs_normalize_spans_one_minus_beta_to_one() -> None:
    from ssjdn import salience_suppression

    a = 0.5 + 0.01 * torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = salience_suppression(a, (8, 8), beta=0.6)
    assert float(plain.max() - plain.min()) < 0.01  # a flat salience map suppresses uniformly
    m = salience_suppression(a, (8, 8), beta=0.6, normalize=True)
    for k in range(2):
        assert float(m[k].min()) == pytest.approx(0.4, abs=1e-6)
        assert float(m[k].max()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(m.flatten(1).argmin(1), a.flatten(1).argmax(1))  # most salient: most damped
    cfg = SSJDNConfig(**TINY, sgs_normalize=True)
    assert SSJDN.from_data(make_multiscale_scenes(8, 32, seed=0), cfg, seed=0).bsd.normalize


def test_diagnostics_report_labels_passes_and_contrast() -> None:
    from ssjdn.diagnostics import chain_agreement, label_accuracy, salience_contrast

    d = make_multiscale_scenes(12, 32, seed=0)
    model = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0)
    acc = label_accuracy(model, d)
    assert set(acc) == {"lsd_img_acc", "lsd_txt_acc", "lsd_txt_acc_small", "lsd_txt_acc_large"}
    assert all(0 <= v <= 100 for v in acc.values())
    agree = chain_agreement(model, d)
    assert all(-1 - 1e-6 <= agree[f"corr_s{i}"] <= 1 + 1e-6 for i in range(1, 5))
    assert model.bsd.drop_chain is None  # restored after the probe
    full = model.similarity(d.images, d.flat_captions)
    model.bsd.drop_chain = 0
    assert not torch.allclose(model.similarity(d.images, d.flat_captions), full)
    model.bsd.drop_chain = None
    contrast = salience_contrast(model, d)
    assert set(contrast) == {"sal_std_s1", "sal_std_s2", "sal_std_s3", "sal_std_s4", "sal_mean"}
    dual = SSJDN.from_data(d, SSJDNConfig(**TINY, multiscale=False, sgs="none", lsd=False), seed=0)
    with pytest.raises(ValueError, match="no LSD"):
        label_accuracy(dual, d)
    with pytest.raises(ValueError, match="no bidirectional BSD"):
        chain_agreement(dual, d)
