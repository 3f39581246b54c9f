"""Issue 19, session 26b: ``+LSD labels only prior`` at ``lsd_mix`` 0.14 (the semantic score's
weight w^2 ~ 0.02 instead of 0.0625), rule ``docs/benchmarks/ssjdn_validation_s26b_rule.md``."""

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
MIX = 0.14
NEW = {
    "+LSD labels only prior mix 0.14": "+LSD labels only prior",
    "BSD labels only prior mix 0.14": "BSD labels only prior",
}


def test_every_method_defined_before_keeps_its_cache_key(method_keys: Callable) -> None:
    # every method defined before session 26b (main at 0b65d93) and its cache key, and the
    # names session 27 added after it (the record holds them; their own test: test_ssjdn_s27.py)
    keys_before = method_keys(exclude=NEW)
    now = {name: method_key(name) for name in [*ABLATION_LADDER, PEER, *VARIANTS]}
    assert {k: now[k] for k in keys_before} == keys_before
    assert set(now) - set(keys_before) == set(NEW)


def test_runs_cached_on_the_s26_seeds_keep_their_keys(cached_keys_kept: Callable) -> None:
    assert cached_keys_kept("5[0-4]", [*ABLATION_LADDER, *VARIANTS]) == 5


def test_each_new_variant_is_l2_with_the_smaller_mix_alone() -> None:
    for name, l2 in NEW.items():
        assert dataclasses.replace(ablation_config(l2), lsd_mix=MIX) == ablation_config(name)
        assert ablation_config(l2).lsd_mix == 0.25
        assert method_key(name) != method_key(l2)
    assert SSJDNConfig().lsd_mix == 0.25 and SSJDNConfig().lsd_supervision == "joint"


def _model(d, mix: float) -> SSJDN:
    cfg = SSJDNConfig(**TINY, lsd_supervision="labels", lsd_combine="prior", lsd_mix=mix)
    return SSJDN.from_data(d, cfg, seed=0).double()


@torch.no_grad()
def test_the_mix_sets_the_semantic_scores_weight_to_its_square() -> None:
    """The retrieval score is (s_res + w^2 s_sem) / (1 + w^2), s_sem the cosine of the category
    priors E^T softmax(W sem): at w = 0.14 the semantic cosine counts 0.0196 : 1."""
    d = make_multiscale_scenes(12, 64, seed=8)
    d = dataclasses.replace(d, images=d.images.double())
    m = _model(d, MIX).eval()
    ids, mask = m.text.tokenize(d.flat_captions)
    v, _ = m.image_features(d.images)
    t = m.text(ids, mask)
    lsd = m.lsd
    pv = F.softmax(lsd.classifier(lsd.mlp_v(v)), dim=-1) @ lsd.prototypes
    pt = F.softmax(lsd.classifier(lsd.mlp_t(t)), dim=-1) @ lsd.prototypes
    s_res = F.normalize(v, dim=-1) @ F.normalize(t, dim=-1).T
    s_sem = F.normalize(pv, dim=-1) @ F.normalize(pt, dim=-1).T
    score = m.encode_images(d.images) @ m.encode_texts(d.flat_captions).T
    assert torch.allclose(score, (s_res + MIX**2 * s_sem) / (1 + MIX**2), atol=1e-12)
    # the default weight would rank differently: the mix is not a no-op
    default = _model(d, 0.25).eval()
    default.load_state_dict(m.state_dict())
    other = default.encode_images(d.images) @ default.encode_texts(d.flat_captions).T
    assert not torch.allclose(score, other, atol=1e-6)


def test_the_mix_does_not_change_training() -> None:
    """Under labels-only supervision (cross-entropy detached) the loss and every gradient are the
    same at lsd_mix 0.14 and 0.25: the mix enters retrieval only."""
    d = make_multiscale_scenes(16, 64, seed=5)
    d = dataclasses.replace(d, images=d.images.double())
    small, default = _model(d, MIX).train(), _model(d, 0.25).train()
    default.load_state_dict(small.state_dict())
    ids, mask = small.text.tokenize(d.flat_captions)
    batch = next(iter(PairBatches(d, ids, mask, 16, torch.Generator().manual_seed(1))))
    grads = []
    for m in (small, default):
        m.zero_grad()
        images, b_ids, b_mask, labels, image_ids = batch
        loss = m.loss(m(images, b_ids, b_mask), labels, image_ids).mean()
        loss.backward()
        grads.append((loss.detach(), {n: p.grad for n, p in m.named_parameters()}))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-12)
    for n, g in grads[0][1].items():
        h = grads[1][1][n]
        assert (g is None) == (h is None), n
        if g is not None:
            assert torch.allclose(g, h, atol=1e-12, rtol=1e-9), n


@pytest.mark.parametrize("bad", [-0.14, -1.0])
def test_negative_mix_names_the_argument(bad: float) -> None:
    with pytest.raises(ValueError, match="needs an LSD semantic part.*lsd_mix=-"):
        SSJDNConfig(lsd_supervision="labels", lsd_combine="prior", lsd_mix=bad)
    with pytest.raises(ValueError, match="lsd_mix must be >= 0"):
        SSJDNConfig(lsd_combine="prior", lsd_mix=bad)


def test_rule_s26b_reads_seeds_55_to_59(tmp_path, capsys, write_val_runs: Callable) -> None:
    base = [10.0, 11.0, 12.0, 10.5, 11.5]
    up = [v + 0.5 + 0.05 * i for i, v in enumerate(base)]
    write_val_runs(
        tmp_path,
        {"+bidirectional centered": base, "+LSD labels only prior mix 0.14": up},
        range(55, 60),
    )
    assert decide.main(["--rule", "s26b_lsd_prior_mix", "--cache", str(tmp_path)]) == 0
    assert "M1 pass; partial (M2 lacks seeds)" in capsys.readouterr().out
    write_val_runs(
        tmp_path, {"+LSD labels only prior mix 0.14": [v - 0.3 for v in base]}, range(55, 60)
    )
    assert decide.main(["--rule", "s26b_lsd_prior_mix", "--cache", str(tmp_path)]) == 0
    assert "M1 fails" in capsys.readouterr().out
