"""Session 33: STL's rejected readings (``stl_rho="predicted"``, ``stl_variant="sharpen"``)
retired like session 32's. The two fields had one value left and went from `SSJDNConfig`; they
were in every row's cache key at that value, so `method_key` still hashes them
(`RETIRED_IN_KEY`) and every committed row keeps its key (`test_ssjdn_retired.py` checks all
of them against ``method_keys.json``)."""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from ssjdn import SSJDN, SemanticGuidedTripletLoss, SSJDNConfig, make_multiscale_scenes
from ssjdn.baselines import ablation_config
from ssjdn.bench import method_key
from ssjdn.retired import RETIRED_AT, RETIRED_IN_KEY, RETIRED_OPTIONS, without_retired

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


def test_stl_fields_are_retired_at_their_neutral_values() -> None:
    assert RETIRED_IN_KEY == {"stl_rho": "label", "stl_variant": "relax"}
    for name, value in RETIRED_IN_KEY.items():
        assert RETIRED_OPTIONS[name] == value
        assert name not in SSJDNConfig().to_dict()
        with pytest.raises(TypeError, match=name):
            SSJDNConfig(**{name: value})


def test_the_key_pin_is_what_keeps_the_keys(method_keys) -> None:
    """Hashed without the pin, the full model's key would change (so the pin is load-bearing);
    with it, it is the recorded one."""
    name = "BSD centered"
    assert method_key(name) == method_keys()[name] == "ca17ef11"
    cfg = asdict(ablation_config(name))
    blob = json.dumps({"method": name, **cfg}, sort_keys=True, default=str)
    assert hashlib.sha1(blob.encode()).hexdigest()[:8] != method_key(name)


def test_retired_stl_readings_are_refused_naming_the_argument() -> None:
    with pytest.raises(ValueError, match=f"rho='predicted' was retired.*{RETIRED_AT}"):
        SemanticGuidedTripletLoss(rho="predicted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rho must be 'label' or 'none'"):
        SemanticGuidedTripletLoss(rho="soft")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="variant"):
        SemanticGuidedTripletLoss(variant="sharpen")  # type: ignore[call-arg]
    for bad in ({"stl_rho": "predicted"}, {"stl_variant": "sharpen"}):
        (option,) = bad
        with pytest.raises(ValueError, match=f"{option}=.*retired.*{RETIRED_AT}"):
            without_retired({**SSJDNConfig().to_dict(), **bad}, "x.json")


def test_stl_margin_is_unchanged_in_float64() -> None:
    """m_ij = m (1 - kappa 1[c_i = c_j]), the relaxed reading that stays (exact in float64)."""
    stl = SemanticGuidedTripletLoss(margin=0.2, kappa=0.75)
    labels = torch.tensor([0, 0, 1, -1])
    m = stl.margins(stl.agreement(labels).double(), 4, torch.device("cpu"))
    assert m[0, 1].item() == pytest.approx(0.2 * 0.25, abs=1e-15)
    assert m[0, 2].item() == pytest.approx(0.2, abs=1e-15)
    assert m[3, 3].item() == pytest.approx(0.2, abs=1e-15)


def test_a_saved_model_with_the_stl_fields_reloads(tmp_path: Path) -> None:
    d = make_multiscale_scenes(6, 32, seed=0)
    model = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0)
    root = model.save(tmp_path / "m")
    meta = json.loads((root / SSJDN.CONFIG).read_text())
    meta["config"].update({"stl_rho": "label", "stl_variant": "relax"})
    (root / SSJDN.CONFIG).write_text(json.dumps(meta))
    again = SSJDN.load(root)
    assert again.config == model.config and again.criterion.rho == "label"
    meta["config"]["stl_variant"] = "sharpen"
    (root / SSJDN.CONFIG).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"stl_variant='sharpen' was retired.*{RETIRED_AT}"):
        SSJDN.load(root)


def test_lsd_diagnosis_reads_the_model_it_was_given() -> None:
    """``scripts/lsd_diagnosis.py``'s post-hoc reading (session 33's diagnosis): at the trained
    semantic weight a = w^2 the sweep is the model's own mR, at a = 0 the residual part's, and the
    true-category oracle at alpha = 0 is the residual part's too (an untrained float64 model)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import lsd_diagnosis
    from ssjdn.diagnostics import semantic_reach
    from ssjdn.train import evaluate_retrieval

    d = make_multiscale_scenes(12, 32, seed=3)
    model = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0).double()
    d.images = d.images.double()
    out = lsd_diagnosis.reach_and_oracle(model, d)
    reach = semantic_reach(model, d)
    assert out["mix_sweep"]["0.0625"] == pytest.approx(evaluate_retrieval(model, d)["mR"])
    assert out["mix_sweep"]["0.0"] == pytest.approx(reach["mR_residual_only"])
    assert out["mix_sweep"]["semantic_only"] == pytest.approx(reach["mR_semantic_only"])
    assert out["oracle"]["0.0"] == pytest.approx(reach["mR_residual_only"])
    assert out["oracle"]["1.0"] >= out["oracle"]["0.0"]
    assert 0 <= out["top1_err_same_class_i2t"] <= 100
