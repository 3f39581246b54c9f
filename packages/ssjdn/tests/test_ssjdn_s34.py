"""Session 34: ``lsd_head_lr`` (LSD's heads at a multiple of the training lr, session 33b) retired
after rule s33b rejected it. The field leaves `SSJDNConfig` and its two bench rows leave
`VARIANTS`; it entered the cache key only when switched on, so every kept row keeps its key, and
the two rows keep theirs from `RETIRED_METHODS` (``method_keys.json`` records both). A saved
config at the neutral 1.0 still loads; another value is refused naming the commit whose code
has it (7b1d953)."""

import json
import re
from pathlib import Path

import pytest
import torch
from ssjdn import SSJDN, SSJDNConfig, ablation_config, make_multiscale_scenes
from ssjdn.baselines import VARIANTS
from ssjdn.bench import BenchSettings, cache_stem, method_key, run_bench
from ssjdn.retired import (
    RETIRED_AT,
    RETIRED_LATER,
    RETIRED_METHODS,
    RETIRED_OPTIONS,
    retired_at,
    without_retired,
)

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}
ROWS = ("+LSD centered head lr 10", "BSD centered head lr 10")
CACHE = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "cache"


def test_the_field_is_gone_and_named_with_its_commit() -> None:
    assert RETIRED_OPTIONS["lsd_head_lr"] == 1.0
    assert "lsd_head_lr" not in SSJDNConfig().to_dict()
    with pytest.raises(TypeError, match="lsd_head_lr"):
        SSJDNConfig(lsd_head_lr=1.0)  # type: ignore[call-arg]
    assert retired_at("lsd_head_lr") == RETIRED_LATER["lsd_head_lr"] == "7b1d953"
    assert retired_at("sgs_fusion") == RETIRED_AT  # the earlier retirements keep their commit


def test_its_rows_keep_their_keys_and_committed_runs(method_keys) -> None:
    keys = method_keys()
    assert {n: keys[n] for n in ROWS} == {
        "+LSD centered head lr 10": "1dc9e9a9",
        "BSD centered head lr 10": "e16a262a",
    }
    for name in ROWS:
        assert name not in VARIANTS and RETIRED_METHODS[name] == method_key(name) == keys[name]
    # rule s33b's committed runs of the rung row are still found under that key
    folder = CACHE / "val" / BenchSettings.quick().key()
    found = [s for s in range(90, 95) if (folder / f"{cache_stem(ROWS[0], s)}.json").is_file()]
    assert found == [90, 91, 92, 93, 94]
    # the row it was compared with is today's and its key did not move
    assert method_key("+LSD centered") == keys["+LSD centered"] == "9752fdd6"


def test_its_rows_are_refused_naming_the_commit(tmp_path: Path) -> None:
    for name in ROWS:
        with pytest.raises(
            ValueError, match=f"{re.escape(repr(name))} is a retired reading.*7b1d953"
        ):
            ablation_config(name)
    with pytest.raises(ValueError, match=r"retired readings.*\['7b1d953'\]"):
        run_bench(tmp_path, seeds=1, methods=["+SFE", ROWS[1]], progress=False)
    assert not list(tmp_path.rglob("*.json"))  # refused before anything ran


@pytest.mark.parametrize("value", [10.0, 0.5, "10"])
def test_a_switched_on_value_is_refused(value) -> None:
    raw = {**SSJDNConfig().to_dict(), "lsd_head_lr": value}
    with pytest.raises(ValueError, match=r"x.json: lsd_head_lr=.* was retired.*1\.0.*7b1d953"):
        without_retired(raw, "x.json")


def test_a_saved_model_with_the_neutral_value_reloads(tmp_path: Path) -> None:
    d = make_multiscale_scenes(6, 32, seed=0)
    model = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0)
    root = model.save(tmp_path / "m")
    meta = json.loads((root / SSJDN.CONFIG).read_text())
    meta["config"]["lsd_head_lr"] = 1.0
    (root / SSJDN.CONFIG).write_text(json.dumps(meta))
    again = SSJDN.load(root)
    assert again.config == model.config
    meta["config"]["lsd_head_lr"] = 10.0
    (root / SSJDN.CONFIG).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="lsd_head_lr=10.0 was retired.*7b1d953"):
        SSJDN.load(root)


# --- session 34's bidirectional diagnosis (``scripts/bidirectional_diagnosis.py``) ---


def _diagnosis():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import bidirectional_diagnosis

    return bidirectional_diagnosis


def _bidirectional_model() -> tuple[SSJDN, object]:
    d = make_multiscale_scenes(12, 32, seed=3)
    cfg = SSJDNConfig(**TINY, sgs="both", lsd=False)
    model = SSJDN.from_data(d, cfg, seed=0).double()
    d.images = d.images.double()
    return model, d


def test_alpha_sweep_reads_the_model_and_restores_it() -> None:
    """alpha = 1 is the model as it is, alpha = 0 the first pass alone (the bench's
    ``drop_chain=1`` probe); the fusion weight is restored bit for bit (float64)."""
    from ssjdn.train import evaluate_retrieval

    bd = _diagnosis()
    model, d = _bidirectional_model()
    before = model.bsd.fuse.weight.detach().clone()
    out = bd.alpha_sweep(model, d)
    assert torch.equal(model.bsd.fuse.weight, before)
    assert out["1.0"] == pytest.approx(evaluate_retrieval(model, d)["mR"], abs=1e-12)
    model.bsd.drop_chain = 1
    assert out["0.0"] == pytest.approx(evaluate_retrieval(model, d)["mR"], abs=1e-12)


def test_per_query_counts_wins_and_the_oracle() -> None:
    bd = _diagnosis()
    model, d = _bidirectional_model()
    s = bd._sims(model, d)
    same = bd.per_query(s, s, d)
    for kind in ("t2i_large_captions", "t2i_small_captions", "i2t_all"):
        row = same[kind]
        assert row["B_better"] == row["B_worse"] == 0.0
        assert row["A_meanR"] == row["B_meanR"] == row["oracle_meanR"]
    other = bd.per_query(s, torch.flip(s, dims=[0]), d)
    n = other["t2i_large_captions"]["n"] + other["t2i_small_captions"]["n"]
    assert n == other["t2i_all"]["n"] == len(d.flat_captions)
    for kind in ("t2i_all", "i2t_all", "t2i_small_captions"):
        row = other[kind]
        assert row["oracle_meanR"] >= max(row["A_meanR"], row["B_meanR"])
    geo = bd.geometry(model, d)
    assert -1.0 <= geo["mean_cos_images"] <= 1.0 and geo["i2t_top1_share_of_top5pct_captions"] > 0


def test_committed_pairs_are_paired_by_seed(tmp_path: Path) -> None:
    """``committed``'s paired B - A reads each seed's two runs (made-up runs)."""
    bd = _diagnosis()
    folder = tmp_path / "val" / BenchSettings.quick().key()
    folder.mkdir(parents=True)
    keys = ["i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR"]
    keys += ["small_mR", "hard_mR", "hard_small_mR"]
    keys += ["probe_img_acc", "probe_txt_acc_large", "probe_txt_acc_small", *bd.B_PROBES]
    for name, up in ((bd.A, 0.0), (bd.B, 1.0), (bd.FULL_ONE, 0.0), (bd.FULL, -2.0)):
        for s in bd.USED_SEEDS:
            metrics = {k: 10.0 + s % 3 + up for k in keys}
            run = {"metrics": metrics, "loss": [1.0, 0.5 + up]}
            (folder / f"{cache_stem(name, s)}.json").write_text(json.dumps(run))
    out = bd.committed(tmp_path)
    assert out["rung"]["mR"]["delta"] == [pytest.approx(1.0)] * 3
    assert out["rung"]["i2t"]["per_seed_delta"] == [1.0] * 25
    assert out["rung"]["final_train_loss"]["delta"][0] == pytest.approx(1.0)
    assert out["full"]["t2i"]["delta"][0] == pytest.approx(-2.0)
    assert len(out["full"]["seeds"]) == 15
