"""Issue 19, session 26: two readings aimed at the bidirectional and LSD rungs on today's
default (``sgs_pool="centered"``): ``sgs_slot_norm="l2"`` (every delivered scale feature at unit
norm before the fusion layer) and ``lsd_supervision="labels"`` (LSD's semantic part supervised
by the category labels alone, the retrieval loss on the residual part)."""

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ssjdn import SSJDN, SSJDNConfig
from ssjdn.baselines import ABLATION_LADDER, VARIANTS, ablation_config
from ssjdn.bench import PEER, method_key
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.train import PairBatches

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
NEW = {
    "+SGS (one direction) slot norm": ("+SGS (one direction) centered", {"sgs_slot_norm": "l2"}),
    "+bidirectional slot norm": ("+bidirectional centered", {"sgs_slot_norm": "l2"}),
    "BSD slot norm": ("BSD centered", {"sgs_slot_norm": "l2"}),
    "+LSD labels only": ("+LSD centered", {"lsd_supervision": "labels"}),
    "BSD labels only": ("BSD centered", {"lsd_supervision": "labels"}),
    "+LSD labels only prior": (
        "+LSD centered",
        {"lsd_supervision": "labels", "lsd_combine": "prior"},
    ),
    "BSD labels only prior": (
        "BSD centered",
        {"lsd_supervision": "labels", "lsd_combine": "prior"},
    ),
}


def test_every_method_defined_before_keeps_its_cache_key(method_keys: Callable) -> None:
    # every method defined before session 26 (main at 45b6682) and its cache key
    keys_before = method_keys(exclude=NEW)
    now = {name: method_key(name) for name in [*ABLATION_LADDER, PEER, *VARIANTS]}
    assert {k: now[k] for k in keys_before} == keys_before
    # session 26b's two variants came after (their own test: test_ssjdn_s26b.py)
    later = {"+LSD labels only prior mix 0.14", "BSD labels only prior mix 0.14"}
    assert set(now) - set(keys_before) - later == set(NEW)


def test_runs_cached_on_the_s25_seeds_keep_their_keys(cached_keys_kept: Callable) -> None:
    assert cached_keys_kept("4[5-9]", [*ABLATION_LADDER, *VARIANTS]) == 6


def test_each_new_variant_is_its_rung_with_the_option_alone() -> None:
    for name, (rung, option) in NEW.items():
        assert dataclasses.replace(ablation_config(rung), **option) == ablation_config(name)
        assert method_key(name) != method_key(rung)
    assert SSJDNConfig().sgs_slot_norm == "none" and SSJDNConfig().lsd_supervision == "joint"


@torch.no_grad()
def test_slot_norm_feeds_unit_norm_slots_to_the_same_fusion_layer(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    projected, images = bsd_inputs(seed=4, n=5)
    for sgs in ("fine_to_coarse", "both"):
        plain = guide_bsd(sgs=sgs, pool="centered")
        normed = guide_bsd(sgs=sgs, pool="centered", slot_norm="l2")
        normed.load_state_dict(plain.state_dict())
        feats, _ = plain.pass_features(projected, images)
        delivered = normed.delivered(feats)
        raw = plain.delivered(feats)
        for chain, raw_chain in zip(delivered, raw):
            for f, r in zip(chain, raw_chain):
                assert torch.allclose(f.norm(dim=1), torch.ones(5, dtype=f.dtype), atol=1e-12)
                assert torch.allclose(f * r.norm(dim=1, keepdim=True), r, atol=1e-12)
        x = torch.cat([f for chain in delivered for f in chain], dim=1)
        v, _ = normed(projected, images)
        assert torch.allclose(v, x @ normed.fuse.weight.T + normed.fuse.bias, atol=1e-12)
        v0, _ = plain(projected, images)
        assert not torch.allclose(v, v0, atol=1e-6)


@pytest.mark.parametrize("bad", ["L2", "unit", 2, None])
def test_slot_norm_bad_value_names_the_argument(bad: object, guide_bsd: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_slot_norm must be 'none' or 'l2'"):
        SSJDNConfig(sgs_slot_norm=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slot_norm must be 'none' or 'l2'"):
        guide_bsd(slot_norm=bad)


def test_slot_norm_needs_sgs(guide_bsd: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_slot_norm='l2' needs multiscale=True and SGS"):
        SSJDNConfig(sgs="none", sgs_slot_norm="l2")
    with pytest.raises(ValueError, match="sgs_slot_norm='l2' needs multiscale=True and SGS"):
        SSJDNConfig(multiscale=False, sfe=False, sgs="none", sgs_slot_norm="l2")
    with pytest.raises(ValueError, match="slot_norm='l2' needs SGS"):
        guide_bsd(sgs="none", slot_norm="l2")


def _batch(model: SSJDN, data) -> tuple[torch.Tensor, ...]:
    ids, mask = model.text.tokenize(data.flat_captions)
    return next(iter(PairBatches(data, ids, mask, 16, torch.Generator().manual_seed(1))))


def _grads(model: SSJDN, batch, names: list[str]) -> dict[str, torch.Tensor]:
    model.zero_grad()
    images, ids, mask, labels, image_ids = batch
    model.loss(model(images, ids, mask), labels, image_ids).mean().backward()
    params = dict(model.named_parameters())
    return {
        n: params[n].grad.clone() if params[n].grad is not None else torch.zeros_like(params[n])
        for n in names
    }


def test_labels_only_trains_the_encoders_as_without_lsd_and_the_heads_by_labels() -> None:
    """With the cross-entropy detached (default), the encoders get exactly the gradient of the
    model without LSD; the semantic heads get the cross-entropy's alone (none from the hinge);
    under "joint" the hinge reaches the heads."""
    d = make_multiscale_scenes(16, 64, seed=5)
    d = dataclasses.replace(d, images=d.images.double())
    base = {**TINY, "stl": False, "sgs_pool": "centered"}
    bare = SSJDN.from_data(d, SSJDNConfig(**base, lsd=False), seed=0).double()
    lab = SSJDN.from_data(d, SSJDNConfig(**base, lsd_supervision="labels"), seed=0).double()
    joint = SSJDN.from_data(d, SSJDNConfig(**base), seed=0).double()
    for m in (bare, lab, joint):
        m.train()
    enc = [n for n, _ in bare.named_parameters()]
    heads = [n for n, _ in lab.named_parameters() if n.startswith("lsd.")]
    batch = _batch(bare, d)
    g_bare, g_lab = _grads(bare, batch, enc), _grads(lab, batch, enc + heads)
    for n in enc:
        assert torch.allclose(g_lab[n], g_bare[n], atol=1e-12, rtol=1e-9), n
    no_ce = SSJDN.from_data(
        d, SSJDNConfig(**base, lsd_supervision="labels", lsd_weight=0.0), seed=0
    ).double()
    no_ce.train()
    g0 = _grads(no_ce, batch, heads)
    assert all(float(g0[n].abs().sum()) == 0.0 for n in heads)  # the hinge never reaches them
    assert float(g_lab["lsd.classifier.weight"].abs().sum()) > 0  # the labels do
    g_joint = _grads(joint, batch, heads)
    assert float(g_joint["lsd.mlp_v.0.weight"].abs().sum()) > 0
    assert not torch.allclose(g_joint["lsd.mlp_v.0.weight"], g_lab["lsd.mlp_v.0.weight"])


@torch.no_grad()
def test_labels_only_retrieves_with_the_concatenated_embedding() -> None:
    d = make_multiscale_scenes(12, 64, seed=8)
    d = dataclasses.replace(d, images=d.images.double())
    for combine in ("concat", "prior"):
        cfg = SSJDNConfig(**TINY, lsd_supervision="labels", lsd_combine=combine)
        m = SSJDN.from_data(d, cfg, seed=0).double().eval()
        joint = SSJDN.from_data(d, dataclasses.replace(cfg, lsd_supervision="joint"), seed=0)
        joint = joint.double().eval()
        joint.load_state_dict(m.state_dict())
        ids, mask = m.text.tokenize(d.flat_captions[: len(d)])
        out = m(d.images, ids, mask)
        v, _ = m.image_features(d.images)
        t = m.text(ids, mask)
        assert torch.allclose(out["img"], F.normalize(v, dim=-1), atol=1e-12)
        assert torch.allclose(out["txt"], F.normalize(t, dim=-1), atol=1e-12)
        img = m.encode_images(d.images)
        assert img.shape[1] == 2 * TINY["embed_dim"] == m.embedding_dim
        assert torch.allclose(img, joint.encode_images(d.images), atol=1e-12)
        assert torch.allclose(joint(d.images, ids, mask)["img"], img, atol=1e-12)


@pytest.mark.parametrize("bad", ["Labels", "label", 1, None])
def test_lsd_supervision_bad_value_names_the_argument(bad: object) -> None:
    with pytest.raises(ValueError, match="lsd_supervision must be 'joint' or 'labels'"):
        SSJDNConfig(lsd_supervision=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kw",
    [{"lsd": False}, {"lsd_mix": 0.0}, {"lsd_combine": "residual"}],
)
def test_labels_only_needs_a_semantic_part(kw: dict) -> None:
    with pytest.raises(ValueError, match="lsd_supervision='labels' needs an LSD semantic part"):
        SSJDNConfig(lsd_supervision="labels", **kw)


def test_rules_s26_read_seeds_50_to_54(tmp_path, capsys, write_val_runs: Callable) -> None:
    base = [10.0, 11.0, 12.0, 10.5, 11.5]
    up = [v + 0.5 + 0.05 * i for i, v in enumerate(base)]
    write_val_runs(
        tmp_path, {"+bidirectional centered": base, "+LSD labels only": up}, range(50, 55)
    )
    assert decide.main(["--rule", "s26_lsd", "--cache", str(tmp_path)]) == 0
    assert "L1 pass; partial (L3 lacks seeds)" in capsys.readouterr().out
    write_val_runs(
        tmp_path, {"BSD centered": base, "BSD labels only": [v - 0.2 for v in base]}, range(50, 55)
    )
    assert decide.main(["--rule", "s26_lsd", "--cache", str(tmp_path)]) == 0
    assert "L3 fails" in capsys.readouterr().out
    write_val_runs(
        tmp_path,
        {"+SGS (one direction) slot norm": up, "+bidirectional slot norm": base},
        range(50, 55),
    )
    assert decide.main(["--rule", "s26_bsd", "--cache", str(tmp_path)]) == 0
    assert "B1 fails" in capsys.readouterr().out
