"""Issue 19, session 27: ``lsd_without_stl="labels_prior"``, the label prior on the LSD rung only
(the full model trains as without it), rule ``docs/benchmarks/ssjdn_validation_s27_rule.md``."""

import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from ssjdn import SSJDN, SSJDNConfig
from ssjdn.baselines import ABLATION_LADDER, VARIANTS, ablation_config
from ssjdn.bench import PEER, method_key
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.train import PairBatches

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
OPTION = {"lsd_without_stl": "labels_prior"}
# the session's new names: the reading's rung and full model, and the full model less one part
NEW = {
    "+LSD labels prior without STL",
    "BSD labels prior without STL",
    "BSD centered - LSD",
    "BSD centered - bidirectional",
}


def test_every_method_defined_before_keeps_its_cache_key(method_keys: Callable) -> None:
    keys_before = method_keys(exclude=NEW)
    now = {name: method_key(name) for name in [*ABLATION_LADDER, PEER, *VARIANTS]}
    assert {k: now[k] for k in keys_before} == keys_before
    assert set(now) - set(keys_before) == NEW
    # the record holds the new names too, at the keys their runs are cached under
    assert {k: now[k] for k in NEW} == {k: v for k, v in method_keys().items() if k in NEW}


def test_runs_cached_on_the_s26b_seeds_keep_their_keys(cached_keys_kept: Callable) -> None:
    assert cached_keys_kept("5[5-9]", [*ABLATION_LADDER, *VARIANTS]) == 4


def test_the_new_names_are_their_rungs_with_one_change() -> None:
    rung, full = ablation_config("+LSD centered"), ablation_config("BSD centered")
    assert ablation_config("+LSD labels prior without STL") == dataclasses.replace(rung, **OPTION)
    assert ablation_config("BSD labels prior without STL") == dataclasses.replace(full, **OPTION)
    assert ablation_config("BSD centered - LSD") == dataclasses.replace(full, lsd=False)
    bi = dataclasses.replace(full, sgs="fine_to_coarse")
    assert ablation_config("BSD centered - bidirectional") == bi
    assert SSJDNConfig().lsd_without_stl == "same" and full == SSJDNConfig()


def test_without_stl_the_rung_resolves_to_the_s26b_model() -> None:
    got = ablation_config("+LSD labels prior without STL").resolved()
    assert dataclasses.replace(got, lsd_without_stl="same") == ablation_config(
        "+LSD labels only prior mix 0.14"
    )
    assert (got.lsd_supervision, got.lsd_combine, got.lsd_mix) == ("labels", "prior", 0.14)
    other = SSJDNConfig(stl=False, lsd_without_stl="labels_prior", lsd_without_stl_mix=0.3)
    assert other.resolved().lsd_mix == 0.3
    # with STL, without LSD or at "same" the config is returned as it is
    for cfg in (SSJDNConfig(**OPTION), SSJDNConfig(stl=False), SSJDNConfig(stl=False, lsd=False)):
        assert cfg.resolved() is cfg


def _data(n: int, seed: int):
    d = make_multiscale_scenes(n, 64, seed=seed)
    return dataclasses.replace(d, images=d.images.double())


def _loss_and_grads(m: SSJDN, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    m.train().zero_grad()
    images, ids, mask, labels, image_ids = batch
    loss = m.loss(m(images, ids, mask), labels, image_ids).mean()
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in m.named_parameters()}


def _same_training(a: SSJDN, b: SSJDN, d) -> None:
    """Same parameters (names, values) after the seeded build, same loss and gradients on a
    batch: the two networks train identically."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    ids, mask = a.text.tokenize(d.flat_captions)
    batch = next(iter(PairBatches(d, ids, mask, 16, torch.Generator().manual_seed(3))))
    (la, ga), (lb, gb) = _loss_and_grads(a, batch), _loss_and_grads(b, batch)
    assert torch.allclose(la, lb, atol=1e-12)
    for n, g in ga.items():
        h = gb[n]
        assert (g is None) == (h is None), n
        if g is not None:
            assert torch.allclose(g, h, atol=1e-12, rtol=1e-9), n


def test_with_stl_the_option_changes_nothing() -> None:
    """The full model with the option is built, and trains, exactly as without it (float64)."""
    d = _data(16, 5)
    with_option = SSJDN.from_data(d, SSJDNConfig(**TINY, **OPTION), seed=0).double()
    default = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0).double()
    assert with_option.config.lsd_supervision == "joint" and with_option.config.lsd_mix == 0.25
    _same_training(with_option, default, d)


def test_without_stl_the_option_builds_the_label_prior_model() -> None:
    """Without STL the option's network is the explicit labels-only prior model at mix 0.14."""
    d = _data(16, 6)
    base = {**TINY, "stl": False}
    with_option = SSJDN.from_data(d, SSJDNConfig(**base, **OPTION), seed=0).double()
    explicit = SSJDNConfig(**base, lsd_supervision="labels", lsd_combine="prior", lsd_mix=0.14)
    _same_training(with_option, SSJDN.from_data(d, explicit, seed=0).double(), d)
    # and it is not the rung without the option: the prior's vectors exist, the ranking differs
    plain = SSJDN.from_data(d, SSJDNConfig(**base), seed=0).double().eval()
    assert with_option.lsd.prototypes is not None and plain.lsd.prototypes is None
    with torch.no_grad():
        with_option.eval()
        a = with_option.encode_images(d.images) @ with_option.encode_texts(d.flat_captions).T
        b = plain.encode_images(d.images) @ plain.encode_texts(d.flat_captions).T
    assert not torch.allclose(a, b, atol=1e-6)


def test_the_resolved_model_saves_and_loads(tmp_path) -> None:
    d = _data(12, 7)
    m = SSJDN.from_data(d, SSJDNConfig(**TINY, stl=False, **OPTION), seed=0).eval()
    m.save(tmp_path / "m")
    back = SSJDN.load(tmp_path / "m").eval()
    assert back.config == m.config and back.config.lsd_supervision == "labels"
    with torch.no_grad():
        images = d.images.float()
        assert torch.allclose(m.encode_images(images), back.encode_images(images), atol=1e-6)


@pytest.mark.parametrize("bad", [1, None, ("labels_prior",)])
def test_a_non_str_option_is_a_type_error_naming_it(bad: object) -> None:
    with pytest.raises(TypeError, match="lsd_without_stl must be a str"):
        SSJDNConfig(lsd_without_stl=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["labels", "", "Labels_Prior", "joint"])
def test_an_unknown_option_is_a_value_error_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match=f"lsd_without_stl must be one of .*got {bad!r}"):
        SSJDNConfig(lsd_without_stl=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [True, "0.14", None])
def test_a_non_number_mix_is_a_type_error_naming_it(bad: object) -> None:
    with pytest.raises(TypeError, match="lsd_without_stl_mix must be a number"):
        SSJDNConfig(lsd_without_stl_mix=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, 0.0, -0.14, math.nan, math.inf])
def test_a_mix_not_above_0_is_a_value_error_naming_it(bad: float) -> None:
    with pytest.raises(ValueError, match="lsd_without_stl_mix must be a finite number > 0"):
        SSJDNConfig(lsd_without_stl_mix=bad)


def test_the_option_needs_lsd() -> None:
    with pytest.raises(ValueError, match="lsd_without_stl='labels_prior' needs LSD.*lsd=False"):
        SSJDNConfig(lsd=False, **OPTION)


def test_rule_s27_reads_seeds_60_to_64(tmp_path, capsys, write_val_runs: Callable) -> None:
    base = [10.0, 11.0, 12.0, 10.5, 11.5]
    up = [v + 0.5 + 0.05 * i for i, v in enumerate(base)]
    runs = {"+bidirectional centered": base, "+LSD labels prior without STL": up}
    write_val_runs(tmp_path, runs, range(60, 65))
    assert decide.main(["--rule", "s27_lsd", "--cache", str(tmp_path)]) == 0
    assert "Q1 pass; partial (Q2 lacks seeds)" in capsys.readouterr().out
    write_val_runs(tmp_path, {"BSD centered": [v + 5 for v in up]}, range(60, 65))
    assert decide.main(["--rule", "s27_lsd", "--cache", str(tmp_path)]) == 0
    assert "ADOPTED on validation: Q1 and Q2 pass" in capsys.readouterr().out
    # a rung at the level of the one below fails Q1
    write_val_runs(tmp_path, {"+LSD labels prior without STL": base}, range(60, 65))
    assert decide.main(["--rule", "s27_lsd", "--cache", str(tmp_path)]) == 0
    assert "Q1 fails" in capsys.readouterr().out
