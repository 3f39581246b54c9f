"""Issue 19, session 30: ``lsd_combine="decouple"``, LSD's residual part with the predicted
category's centroid taken out (rule ``docs/benchmarks/ssjdn_validation_s30_rule.md``)."""

import dataclasses
import math
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
from ssjdn.ssjdn import SemanticDecoupling
from ssjdn.train import PairBatches

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
OPTION = {"lsd_combine": "decouple"}
NEW = {"+LSD decouple": "+LSD centered", "BSD decouple": "BSD centered"}


def test_every_method_defined_before_keeps_its_cache_key(method_keys: Callable) -> None:
    keys_before = method_keys(exclude=NEW)
    now = {name: method_key(name) for name in [*ABLATION_LADDER, PEER, *VARIANTS]}
    assert {k: now[k] for k in keys_before} == keys_before
    assert set(now) - set(keys_before) == set(NEW)
    assert {k: now[k] for k in NEW} == {k: v for k, v in method_keys().items() if k in NEW}


def test_runs_cached_on_the_s28_seeds_keep_their_keys(cached_keys_kept: Callable) -> None:
    # seeds 65..74: the three rungs and the leave-one-outs of rule s28
    assert cached_keys_kept("6[5-9]", [*ABLATION_LADDER, *VARIANTS]) >= 5
    assert cached_keys_kept("7[0-4]", [*ABLATION_LADDER, *VARIANTS]) >= 3


def test_the_new_names_are_their_rungs_with_one_change() -> None:
    for name, rung in NEW.items():
        assert ablation_config(name) == dataclasses.replace(ablation_config(rung), **OPTION)
    assert SSJDNConfig().lsd_combine == "concat"


def _lsd(mix: float = 0.25, seed: int = 0) -> SemanticDecoupling:
    torch.manual_seed(seed)
    return SemanticDecoupling(6, 3, mix=mix, combine="decouple", detach=True).double()


def test_decoupled_embedding_equals_the_formula() -> None:
    """e = [l2norm(l2norm(x) - C^T p) ; w l2norm(sem)] / sqrt(1 + w^2), p = softmax(W sem)."""
    lsd = _lsd()
    g = torch.Generator().manual_seed(1)
    lsd.centroids.copy_(torch.randn(3, 6, generator=g, dtype=torch.float64))
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    sem = torch.randn(4, 6, generator=g, dtype=torch.float64)
    got = lsd.embed(x, sem)
    w = 0.25
    for i in range(4):
        logits = lsd.classifier.weight @ sem[i] + lsd.classifier.bias
        p = torch.exp(logits - logits.max())
        p = p / p.sum()
        c = sum(p[k] * lsd.centroids[k] for k in range(3))
        u = x[i] / x[i].norm()
        r = (u - c) / (u - c).norm()
        want = torch.cat([r, w * sem[i] / sem[i].norm()]) / math.sqrt(1 + w * w)
        assert torch.allclose(got[i], want, atol=1e-12)
        assert torch.isclose(got[i].norm(), torch.tensor(1.0, dtype=torch.float64), atol=1e-12)
    assert lsd.out_dim_factor == 2
    # mix 0: the decoupled residual part alone
    lsd0 = _lsd(mix=0.0)
    lsd0.centroids.copy_(lsd.centroids)
    lsd0.classifier.load_state_dict(lsd.classifier.state_dict())
    assert lsd0.out_dim_factor == 1
    assert torch.allclose(lsd0.embed(x, sem), lsd.decoupled(x, sem), atol=1e-12)


def test_with_no_centroid_set_the_embedding_is_todays_concat() -> None:
    """Before any training batch (all centroids 0) "decouple" ranks exactly as "concat"."""
    dec = _lsd()
    torch.manual_seed(0)
    cat = SemanticDecoupling(6, 3, mix=0.25, combine="concat", detach=True).double()
    cat.load_state_dict({k: v for k, v in dec.state_dict().items() if not k.startswith("centr")})
    g = torch.Generator().manual_seed(2)
    x, sem = (torch.randn(5, 6, generator=g, dtype=torch.float64) for _ in range(2))
    assert torch.equal(dec.centroids, torch.zeros(3, 6, dtype=torch.float64))
    assert torch.allclose(dec.embed(x, sem), cat.embed(x, sem), atol=1e-14)


def test_centroids_first_set_then_moved_by_the_momentum() -> None:
    lsd = _lsd()
    m = SemanticDecoupling.DECOUPLE_MOMENTUM
    g = torch.Generator().manual_seed(3)
    v, t = (torch.randn(4, 6, generator=g, dtype=torch.float64) for _ in range(2))
    labels = torch.tensor([0, 2, 0, -1])
    lsd.update_centroids([v, t], labels)
    uv, ut = F.normalize(v, dim=-1), F.normalize(t, dim=-1)
    first0 = torch.stack([uv[0], uv[2], ut[0], ut[2]]).mean(0)
    assert torch.allclose(lsd.centroids[0], first0, atol=1e-12)
    assert torch.allclose(lsd.centroids[2], (uv[1] + ut[1]) / 2, atol=1e-12)
    assert torch.equal(lsd.centroids[1], torch.zeros(6, dtype=torch.float64))  # unseen, -1 skipped
    assert lsd.centroid_seen.tolist() == [1.0, 0.0, 1.0]
    v2, t2 = (torch.randn(2, 6, generator=g, dtype=torch.float64) for _ in range(2))
    lsd.update_centroids([v2, t2], torch.tensor([0, 0]))
    mean2 = torch.cat([F.normalize(v2, dim=-1), F.normalize(t2, dim=-1)]).mean(0)
    assert torch.allclose(lsd.centroids[0], m * first0 + (1 - m) * mean2, atol=1e-12)


def _data(n: int, seed: int):
    d = make_multiscale_scenes(n, 64, seed=seed)
    return dataclasses.replace(d, images=d.images.double())


def test_training_batches_move_the_centroids_and_evaluation_does_not() -> None:
    d = _data(16, 5)
    m = SSJDN.from_data(d, SSJDNConfig(**TINY, **OPTION), seed=0).double()
    ids, mask = m.text.tokenize(d.flat_captions)
    images, ids_b, mask_b, labels, image_ids = next(
        iter(PairBatches(d, ids, mask, 16, torch.Generator().manual_seed(3)))
    )
    m.eval()
    with torch.no_grad():
        m.loss(m(images, ids_b, mask_b), labels, image_ids)
    assert m.lsd.centroid_seen.sum() == 0  # eval mode: nothing moves
    m.train().zero_grad()
    out = m(images, ids_b, mask_b)
    m.loss(out, labels, image_ids).mean().backward()
    seen = sorted(set(labels.tolist()))
    assert m.lsd.centroid_seen.nonzero().flatten().tolist() == seen
    assert all(p.grad is not None for p in m.lsd.mlp_v.parameters())
    # the centroids are buffers (saved with the weights), not trained parameters
    assert "lsd.centroids" in m.state_dict()
    assert "lsd.centroids" not in dict(m.named_parameters())
    assert m.embedding_dim == 2 * TINY["embed_dim"]


def test_the_centroids_are_saved_and_loaded(tmp_path) -> None:
    d = _data(12, 7)
    m = SSJDN.from_data(d, SSJDNConfig(**TINY, **OPTION), seed=0)
    g = torch.Generator().manual_seed(4)
    m.lsd.centroids.copy_(torch.randn(*m.lsd.centroids.shape, generator=g))
    m.eval().save(tmp_path / "m")
    back = SSJDN.load(tmp_path / "m").eval()
    assert back.config.lsd_combine == "decouple"
    assert torch.equal(back.lsd.centroids, m.lsd.centroids)
    with torch.no_grad():
        images = d.images.float()
        assert torch.allclose(m.encode_images(images), back.encode_images(images), atol=1e-6)


@pytest.mark.parametrize("bad", ["decoupled", "", "Decouple", 1, None])
def test_an_unknown_combine_is_a_value_error_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="lsd_combine must be 'concat', 'residual', 'prior' or"):
        SSJDNConfig(lsd_combine=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="combine must be 'concat', 'residual', 'prior' or"):
        SemanticDecoupling(6, 3, combine=bad)  # type: ignore[arg-type]


def test_decouple_does_not_take_the_confidence_gate() -> None:
    with pytest.raises(ValueError, match="lsd_gate='confidence' needs .*'decouple'"):
        SSJDNConfig(lsd_gate="confidence", **OPTION)
    with pytest.raises(ValueError, match="gate='confidence' needs combine .*'decouple'"):
        SemanticDecoupling(6, 3, combine="decouple", gate="confidence")


def test_bad_centroid_updates_are_value_errors() -> None:
    lsd = _lsd()
    v = torch.zeros(2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="labels must be < num_classes 3"):
        lsd.update_centroids([v], torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels must be a 1-d tensor"):
        lsd.update_centroids([v], torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match=r"units must be \(B, 6\) with B = 2"):
        lsd.update_centroids([torch.zeros(2, 5, dtype=torch.float64)], torch.tensor([0, 1]))
    concat = SemanticDecoupling(6, 3, combine="concat")
    with pytest.raises(ValueError, match="update_centroids needs combine='decouple'"):
        concat.update_centroids([v.float()], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="decoupled needs combine='decouple'"):
        concat.decoupled(v.float(), v.float())
    assert not hasattr(concat, "centroids")  # other readings' weights are unchanged


def test_rule_s30_reads_seeds_75_to_79(tmp_path, capsys, write_val_runs: Callable) -> None:
    base = [14.0, 15.0, 16.0, 14.5, 15.5]
    up = [v + 1.0 + 0.05 * i for i, v in enumerate(base)]
    runs = {"+bidirectional centered": base, "+LSD decouple": up}
    write_val_runs(tmp_path, runs, range(75, 80))
    assert decide.main(["--rule", "s30_lsd_decouple", "--cache", str(tmp_path)]) == 0
    assert "D1 pass; partial (D2 lacks seeds)" in capsys.readouterr().out
    full = [v + 5 for v in base]
    write_val_runs(tmp_path, {"BSD centered": full, "BSD decouple": full}, range(75, 80))
    assert decide.main(["--rule", "s30_lsd_decouple", "--cache", str(tmp_path)]) == 0
    assert "ADOPTED on validation: D1 and D2 pass" in capsys.readouterr().out
    # the full model lower by 1 on every seed fails D2
    write_val_runs(tmp_path, {"BSD decouple": [v - 1 for v in full]}, range(75, 80))
    assert decide.main(["--rule", "s30_lsd_decouple", "--cache", str(tmp_path)]) == 0
    assert "D2 fails" in capsys.readouterr().out
    # a rung at the level of the one below fails D1 (seeds 70..74 are not read)
    write_val_runs(tmp_path, {"+LSD decouple": base}, range(75, 80))
    write_val_runs(tmp_path, {"+LSD decouple": up}, range(70, 75))
    assert decide.main(["--rule", "s30_lsd_decouple", "--cache", str(tmp_path)]) == 0
    assert "D1 fails" in capsys.readouterr().out
