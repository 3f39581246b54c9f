"""Issue 19, seventh pass: ``sgs_polarity_c2f`` (the coarse->fine pass's own polarity), the STL
kappa variants, and their input checks."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from ssjdn import SSJDN, BidirectionalScaleDecoupling, SSJDNConfig, ablation_config
from ssjdn.bench import method_key
from ssjdn.diagnostics import pass_overlap
from ssjdn.scenes import make_multiscale_scenes

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
CACHE = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "cache"


def test_polarity_c2f_is_checked(guide_bsd: Callable) -> None:
    with pytest.raises(ValueError, match="sgs_polarity_c2f must be"):
        SSJDNConfig(sgs_polarity_c2f="invert")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="polarity_c2f must be"):
        BidirectionalScaleDecoupling(4, polarity_c2f="both")  # type: ignore[arg-type]
    bsd = guide_bsd(polarity_c2f="suppress_salient")
    with pytest.raises(ValueError, match="pass_index must be in"):
        bsd.suppression(torch.rand(1, 1, 2, 2), (4, 4), 2)
    with pytest.raises(TypeError, match="pass_index must be an int"):
        bsd.suppression(torch.rand(1, 1, 2, 2), (4, 4), True)  # type: ignore[arg-type]


def test_each_pass_gets_its_polarity(guide_bsd: Callable) -> None:
    """'same' keeps one polarity for both passes; otherwise only coarse->fine passes (the second
    of "both", the only one of "coarse_to_fine") take polarity_c2f."""
    assert guide_bsd().pass_polarities == ["keep_salient", "keep_salient"]
    kw = {"polarity_c2f": "suppress_salient"}
    assert guide_bsd(**kw).pass_polarities == ["keep_salient", "suppress_salient"]
    assert guide_bsd("fine_to_coarse", **kw).pass_polarities == ["keep_salient"]
    assert guide_bsd("coarse_to_fine", **kw).pass_polarities == ["suppress_salient"]


@torch.no_grad()
def test_c2f_suppress_complements_only_the_second_passs_map(
    guide_bsd: Callable, bsd_inputs: Callable
) -> None:
    """With beta = 1 and a stretched map the coarse->fine pass's M becomes exactly 1 - A_g (the
    complement of today's A_g); the fine->coarse pass, the guiding scales' own features and every
    feature of the first pass are bit-identical to the default's."""
    projected, images = bsd_inputs()
    same, sup = guide_bsd(), guide_bsd(polarity_c2f="suppress_salient")
    sup.load_state_dict(same.state_dict())
    a = torch.rand(3, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    m_same, m_sup = same.suppression(a, (8, 8), 1), sup.suppression(a, (8, 8), 1)
    assert torch.allclose(m_same + m_sup, torch.ones_like(m_same), atol=1e-15)
    assert torch.equal(same.suppression(a, (8, 8), 0), sup.suppression(a, (8, 8), 0))
    fa, _ = same.pass_features(projected, images)
    fb, _ = sup.pass_features(projected, images)
    assert all(torch.equal(x, y) for x, y in zip(fa[0], fb[0]))
    assert torch.equal(fa[1][3], fb[1][3])  # the coarsest scale guides the second pass
    assert all(not torch.allclose(fa[1][j], fb[1][j]) for j in (0, 1, 2))


def test_c2f_variants_reach_the_model_and_pass_overlap_reads_each_passs_map() -> None:
    """The variants switch only the named option; the model's BSD carries it; the overlap probe
    uses each pass's own map: the first pass's damping is unchanged and the second pass damps
    exactly what it kept before (mean damping 1 - today's)."""
    for name, rung, option in [
        ("+bidirectional c2f suppress", "+bidirectional", "sgs_polarity_c2f"),
        ("BSD c2f suppress", "+STL (full SSJDN)", "sgs_polarity_c2f"),
        ("STL kappa 0.75", "+STL (full SSJDN)", "stl_kappa"),
        ("STL kappa 1", "+STL (full SSJDN)", "stl_kappa"),
    ]:
        # measured against kappa 0.5, the default of their time (pinned by PREVIOUS_STL)
        a, b = ablation_config(name).to_dict(), ablation_config(rung, stl_kappa=0.5).to_dict()
        assert {k for k in a if a[k] != b[k]} == {option}
    data = make_multiscale_scenes(6, image_size=32, seed=0)
    today = SSJDN.from_data(data, ablation_config("+bidirectional", **TINY), seed=0)
    model = SSJDN.from_data(data, ablation_config("+bidirectional c2f suppress", **TINY), seed=0)
    assert model.bsd.pass_polarities == ["keep_salient", "suppress_salient"]
    o_today, o_model = pass_overlap(today, data), pass_overlap(model, data)
    assert o_model["sgs_damp_mean_p0"] == pytest.approx(o_today["sgs_damp_mean_p0"], abs=1e-12)
    assert o_model["sgs_damp_mean_p1"] == pytest.approx(1 - o_today["sgs_damp_mean_p1"], abs=1e-6)


# cache keys of the goal methods before the kappa switch (session 16's ssjdn_test_n10 runs)
KEYS_BEFORE = {
    "dual-encoder": "992656cb",
    "+SFE": "0d36a351",
    "+SGS (one direction)": "b051e791",
    "+bidirectional": "82536e30",
    "+LSD": "3c36b854",
    "AMFMN-style": "64b2f35e",
}


def test_kappa_switch_moves_only_the_full_models_key() -> None:
    """kappa acts only where STL is on: the methods without STL (the dual encoder, the peer, every
    rung below STL) keep the keys of their committed runs, and the full model gets a new one (its
    runs under kappa 0.5 are not reused as today's)."""
    assert ablation_config("+STL (full SSJDN)").stl_kappa == 1.0
    assert ablation_config("dual-encoder").stl is False
    assert {m: method_key(m) for m in KEYS_BEFORE} == KEYS_BEFORE
    assert method_key("+STL (full SSJDN)") not in ("f3231489", method_key("STL kappa 1"))
    assert (
        ablation_config("STL kappa 1").to_dict() == ablation_config("+STL (full SSJDN)").to_dict()
    )
    assert ablation_config("STL kappa 0.75").stl_kappa == 0.75
    assert ablation_config("LSD aux").stl_kappa == 0.5  # earlier variants stay as measured
    data = make_multiscale_scenes(6, image_size=32, seed=0)
    full = SSJDN.from_data(data, ablation_config("+STL (full SSJDN)", **TINY), seed=0)
    dual = SSJDN.from_data(data, ablation_config("dual-encoder", **TINY), seed=0)
    assert full.criterion.kappa == 1.0 and dual.criterion.kappa == 0.0
    # kappa 1: a same-class negative has margin 0, another class's the full margin
    m = full.criterion.margins(
        torch.tensor([[1.0, 0.0]], dtype=torch.float64), 2, torch.device("cpu")
    )
    assert m.tolist() == [[0.0, full.config.margin]]
    for bad in (1.5, -0.1, True, "1"):
        with pytest.raises(ValueError, match="stl_kappa must be"):
            SSJDNConfig(stl_kappa=bad)  # type: ignore[arg-type]
    if CACHE.is_dir():
        names = [p.name for p in CACHE.rglob("*.json")]
        assert all(any(f"__{k}__" in n for n in names) for k in KEYS_BEFORE.values())
