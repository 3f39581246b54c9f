"""Probes of why the bidirectional pattern and LSD add nothing (issue 19, fourth pass)."""

import dataclasses

import pytest
import torch
from ssjdn import SSJDN, SSJDNConfig, local_contrast_salience, train_retrieval
from ssjdn.diagnostics import (
    LSDTrace,
    label_probe,
    loss_gradients,
    pass_overlap,
    sgs_effect,
)
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.train import PairBatches

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


def _double(d):
    """The same scenes in float64 (every other field kept)."""
    return dataclasses.replace(d, images=d.images.double())


def test_pass_overlap_of_identical_and_of_neutral_passes() -> None:
    """Two passes guided by the same map overlap exactly (correlation 1, soft IoU 1); with
    beta = 0 neither pass damps anything."""
    d = _double(make_multiscale_scenes(8, 64, seed=3, twin_fraction=1.0))
    m = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0).double()
    out = pass_overlap(m, d)
    assert 0.0 <= out["sgs_damp_overlap"] <= 1.0
    assert out["keep_small_p0"] > 1.5  # the fine contrast guide keeps the small objects
    m.bsd.guide_salience = lambda a, images=None: local_contrast_salience(images, (8, 8))
    out = pass_overlap(m, d)
    assert out["sgs_map_corr"] == pytest.approx(1.0, abs=1e-9)
    assert out["sgs_damp_overlap"] == pytest.approx(1.0, abs=1e-9)
    neutral = SSJDN.from_data(d, SSJDNConfig(**TINY, sgs_beta=0.0), seed=0).double()
    out = pass_overlap(neutral, d)
    assert out["sgs_damp_mean_p0"] == 0.0 and out["sgs_damp_mean_p1"] == 0.0


def test_sgs_effect_tells_a_rescaling_from_a_turn() -> None:
    """With beta = 0 SGS changes nothing (cosine 1, norm ratio 1); features that are the same at
    every place are only rescaled by any map (cosine 1, ratio < 1); varying features are turned.
    The probe is of the pooling it was written for, ``sgs_pool="multiply"`` (pinned)."""
    d = _double(make_multiscale_scenes(6, 64, seed=5))
    mult = {**TINY, "sgs_pool": "multiply"}
    m = SSJDN.from_data(d, SSJDNConfig(**mult, sgs_beta=0.0), seed=0).double()
    out = sgs_effect(m, d)
    for p in (0, 1):
        assert out[f"sgs_dir_cos_p{p}"] == pytest.approx(1.0, abs=1e-12)
        assert out[f"sgs_norm_ratio_p{p}"] == pytest.approx(1.0, abs=1e-12)
    m = SSJDN.from_data(d, SSJDNConfig(**mult), seed=0).double()
    turned = sgs_effect(m, d)
    # untrained, the pooled features are dominated by what every place shares: cos ~1 - 1e-7
    assert turned["sgs_dir_cos_p0"] < 1 - 1e-9
    with torch.no_grad():
        for proj in m.proj:  # constant features: only the 1x1 projection's bias survives
            proj.weight.zero_()
            proj.bias.uniform_(0.5, 1.0)
    flat = sgs_effect(m, d)
    assert flat["sgs_dir_cos_p0"] == pytest.approx(1.0, abs=1e-12)
    assert flat["sgs_norm_ratio_p0"] < 0.99
    with pytest.raises(ValueError, match="no SGS"):
        sgs_effect(SSJDN.from_data(d, SSJDNConfig(**TINY, sgs="none"), seed=0), d)


def test_label_probe_reads_labels_that_the_embeddings_hold() -> None:
    """Embeddings that are the one-hot label give a probe accuracy of 100 %; random ones about
    chance on a held-out draw."""
    train = make_multiscale_scenes(40, 32, seed=6)
    test = make_multiscale_scenes(20, 32, seed=7)
    m = SSJDN.from_data(train, SSJDNConfig(**TINY, lsd=False), seed=0)
    k = len(train.class_names)
    m.encode_images = lambda x: torch.nn.functional.one_hot(
        train.labels if len(x) == len(train) else test.labels, k
    ).float()
    out = label_probe(m, train, test)
    assert out["probe_img_acc"] == 100.0
    assert set(out) == {"probe_img_acc", "probe_txt_acc_large", "probe_txt_acc_small"}


def test_loss_gradients_leave_the_model_alone_and_see_the_detach() -> None:
    """loss_gradients works on a copy (weights, BatchNorm statistics and .grad untouched); with
    lsd_detach=True the cross-entropy's gradient on the encoders is exactly 0, and the
    cross-entropy taken through the encoders scales with lambda."""
    d = make_multiscale_scenes(16, 32, seed=8)
    m = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0)
    ids, mask = m.text.tokenize(d.flat_captions)
    batch = next(iter(PairBatches(d, ids, mask, 16, torch.Generator().manual_seed(0))))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    out = loss_gradients(m, batch)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(p.grad is None for p in m.parameters())
    assert out["grad_lsd_enc"] == 0.0 and out["grad_lsd_heads"] > 0
    m2 = SSJDN.from_data(d, SSJDNConfig(**TINY, lsd_weight=0.2), seed=0)
    out2 = loss_gradients(m2, batch)
    assert out2["grad_ce_enc_ratio"] == pytest.approx(2 * out["grad_ce_enc_ratio"], rel=1e-4)
    with pytest.raises(ValueError, match="no LSD"):
        loss_gradients(SSJDN.from_data(d, SSJDNConfig(**TINY, lsd=False), seed=0), batch)


def test_lsd_trace_does_not_change_training() -> None:
    """Training with the trace gives exactly the weights of training without it, and one record
    per epoch."""
    d = make_multiscale_scenes(6, 32, seed=9)
    weights = []
    for traced in (False, True):
        m = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0)
        ids, mask = m.text.tokenize(d.flat_captions)
        batch = next(iter(PairBatches(d, ids, mask, 3, torch.Generator().manual_seed(1))))
        trace = LSDTrace(d, batch)
        train_retrieval(
            m, d, epochs=2, batch_size=3, progress=False, callbacks=[trace] if traced else []
        )
        weights.append(m.state_dict())
        if traced:
            assert len(trace.records) == 2 and "lsd_img_acc" in trace.records[0]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_lsd_without_mix_trains_the_encoders_on_labels_and_embeds_the_residual_part_only() -> None:
    """lsd_detach=False, lsd_mix=0: the retrieval embedding is l2norm(v) alone (width embed_dim,
    no semantic part), while the label cross-entropy's gradient reaches the image encoder (with
    the default detach it does not)."""
    d = make_multiscale_scenes(10, 32, seed=11)
    cfg = SSJDNConfig(**TINY, lsd_detach=False, lsd_mix=0.0)
    m = SSJDN.from_data(d, cfg, seed=0).double()
    x = d.images.double()
    emb = m.encode_images(x)  # eval mode
    with torch.no_grad():
        v, _ = m.eval().image_features(x)
    assert emb.shape[1] == cfg.embed_dim
    assert torch.allclose(emb, torch.nn.functional.normalize(v, dim=-1), atol=1e-12)
    m.train()
    ids, mask = m.text.tokenize([c[0] for c in d.captions])
    grads = {}
    for detach in (False, True):
        m.lsd.detach = detach
        m.zero_grad()
        out = m(x, ids, mask)
        type(m.lsd).loss(out["v_logits"], out["t_logits"], d.labels).sum().backward()
        grads[detach] = sum(
            float(p.grad.abs().sum()) for p in m.backbone.parameters() if p.grad is not None
        )
    assert grads[False] > 0 and grads[True] == 0
