"""Issue 19, seventh pass: the STL kappa variants and their input checks (the pass's
``sgs_polarity_c2f`` was retired on 2026-12-05, at commit e375864)."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from ssjdn import SSJDN, SSJDNConfig, ablation_config
from ssjdn.bench import method_key
from ssjdn.scenes import make_multiscale_scenes

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
CACHE = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "cache"


def test_suppression_pass_index_is_checked(guide_bsd: Callable) -> None:
    bsd = guide_bsd()
    with pytest.raises(ValueError, match="pass_index must be in"):
        bsd.suppression(torch.rand(1, 1, 2, 2), (4, 4), 2)
    with pytest.raises(TypeError, match="pass_index must be an int"):
        bsd.suppression(torch.rand(1, 1, 2, 2), (4, 4), True)  # type: ignore[arg-type]


def test_kappa_variants_switch_only_kappa() -> None:
    """The kappa variants switch only ``stl_kappa`` against the full model as measured (kappa 0.5,
    the default of their time, pinned by PREVIOUS_STL)."""
    for name in ("STL kappa 1", "STL kappa 0.5"):
        a = ablation_config(name).to_dict()
        b = ablation_config("+STL (full SSJDN)", stl_kappa=0.5).to_dict()
        assert {k for k in a if a[k] != b[k]} <= {"stl_kappa"}


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
    assert ablation_config("STL kappa 0.5").stl_kappa == 0.5
    assert ablation_config("SGS chain (v1)").stl_kappa == 0.5  # earlier variants stay as measured
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
