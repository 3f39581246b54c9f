"""Session 32: the readings rejected on validation are retired from the library (options, code,
bench rows; their code and results at commit e375864). What stays must not move: every kept bench
row keeps its cache key, ``--resume`` over the committed grids of today's rows trains nothing,
the rules that named a retired row still read its committed runs, and a saved config that holds
a retired option at its neutral value still loads."""

import json
import sys
from pathlib import Path

import pytest
from ssjdn import SSJDN, SSJDNConfig, ablation_config, make_multiscale_scenes
from ssjdn.baselines import ABLATION_LADDER, LADDER, VARIANTS
from ssjdn.bench import PEER, BenchSettings, cache_stem, method_key, run_bench
from ssjdn.retired import (
    RETIRED_AT,
    RETIRED_METHODS,
    RETIRED_OPTIONS,
    RETIRED_VALUES,
    without_retired,
)

ROOT = Path(__file__).resolve().parents[3]
CACHE = ROOT / "docs" / "benchmarks" / "cache"
sys.path.insert(0, str(ROOT / "packages" / "ssjdn" / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)

KEPT = [*ABLATION_LADDER, PEER, *VARIANTS]
TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


def test_every_row_keeps_its_cache_key(method_keys) -> None:
    """The record of every row ever defined (``method_keys.json``) is split exactly into the kept
    rows, whose keys `method_key` still computes, and the retired ones, whose keys it returns
    from `RETIRED_METHODS`."""
    keys = method_keys()
    # the rows defined after the record (session 32's reading, `test_ssjdn_s32.py`; session
    # 33b's two rows were added, then retired in session 34: `test_ssjdn_s34.py`)
    added = {"+bidirectional centered fine-max c2f", "BSD centered fine-max c2f"}
    assert set(KEPT).isdisjoint(RETIRED_METHODS) and added <= set(KEPT)
    assert (set(KEPT) - added) | set(RETIRED_METHODS) == set(keys)
    assert {n: method_key(n) for n in keys} == keys
    assert set(LADDER) <= set(KEPT)


def test_a_retired_row_is_refused_with_the_commit(tmp_path: Path) -> None:
    name = "+bidirectional centered complement"
    assert name in RETIRED_METHODS and RETIRED_AT == "e375864"
    with pytest.raises(ValueError, match=f"retired reading.*{RETIRED_AT}"):
        ablation_config(name)
    with pytest.raises(ValueError, match=f"retired readings.*{RETIRED_AT}"):
        run_bench(tmp_path, seeds=1, methods=["+SFE", name], progress=False)
    assert not list(tmp_path.rglob("*.json"))  # refused before anything ran
    assert cache_stem(name, 80) == "bidirectional_centered_complement__fc3b7102__seed80"


def test_retired_options_are_gone_from_the_config() -> None:
    fields = set(SSJDNConfig().to_dict())
    assert fields.isdisjoint(RETIRED_OPTIONS)
    for option in RETIRED_OPTIONS:
        with pytest.raises(TypeError, match=option):
            SSJDNConfig(**{option: RETIRED_OPTIONS[option]})
    for option, values in RETIRED_VALUES.items():
        assert option in fields
        for value in values:
            with pytest.raises(ValueError, match=option):
                SSJDNConfig(**{option: value})


def _resume_misses(split: str, first: int, seeds: int, methods: list[str], tmp: Path) -> list:
    out = run_bench(
        tmp,
        seeds=seeds,
        first_seed=first,
        split=split,
        methods=methods,
        cache_dir=CACHE,
        resume=True,
        time_limit=1e-9,  # a run that is not cached would be listed as missing, not trained
        time_evaluation=False,
        progress=False,
    )
    return out["missing"]


def test_resume_over_the_committed_test_grid_trains_nothing(tmp_path: Path) -> None:
    """The current test table's grid (rule s25b: today's ladder, the peer and the ladder as
    measured until 2026-12-04, test seeds 0..9) comes entirely from the committed cache."""
    pytest.importorskip("matplotlib")
    before = sorted(CACHE.rglob("*.json"))
    methods = [*LADDER, PEER, "+SGS (one direction)", "+bidirectional", "+LSD", "+STL (full SSJDN)"]
    assert _resume_misses("test", 0, 10, methods, tmp_path) == []
    assert sorted(CACHE.rglob("*.json")) == before


def test_resume_over_the_committed_validation_grids_trains_nothing(tmp_path: Path) -> None:
    """Today's rows on the validation seeds of rules s28 (65..74, with the leave-one-out rows) and
    s31b (80..84) come entirely from the committed cache."""
    pytest.importorskip("matplotlib")
    rows = LADDER[2:]
    loo = ["BSD centered - LSD", "BSD centered - bidirectional"]
    assert _resume_misses("val", 65, 10, [*rows, *loo], tmp_path / "a") == []
    assert _resume_misses("val", 80, 5, LADDER[2:4], tmp_path / "b") == []


def test_every_rule_still_finds_its_runs() -> None:
    """Each rule of ``scripts/decide.py`` (those naming retired rows included) finds the committed
    validation runs of the rows of its first check (the check every rule ran), on every seed of
    its range but the one rule s22 did not run (seed 29)."""
    folder = CACHE / "val" / BenchSettings.quick().key()
    for name, rule in decide.RULES.items():
        # session 32's own rule, run after this test was written
        if name == "s32_fine_max":
            continue
        first, last = rule["seeds"]
        _, _, a, b = rule["check"][0]
        for m in (a, b):
            found = [
                s for s in range(first, last + 1) if (folder / f"{cache_stem(m, s)}.json").is_file()
            ]
            expected = range(first, last) if name == "s22" else range(first, last + 1)
            assert found == list(expected), (name, m, found)


def test_decide_summary_reproduces_the_committed_s31b_summary(tmp_path: Path, capsys) -> None:
    """``decide.py --rule s31b_complement --summary`` writes exactly the JSON that the retired
    ``summarize_s31b.py`` committed."""
    out = tmp_path / "summary.json"
    assert (
        decide.main(["--rule", "s31b_complement", "--cache", str(CACHE), "--summary", str(out)])
        == 0
    )
    committed = ROOT / "docs" / "benchmarks" / "ssjdn_validation_s31b_decision.json"
    assert out.read_bytes() == committed.read_bytes()
    printed = capsys.readouterr().out
    assert "mR +bidirectional centered {80: 15.65" in printed and "15.19 ± 0.35" in printed


def test_without_retired_drops_neutral_values_and_refuses_others() -> None:
    """A config saved before the retirement (the committed figure model's ``config.json``) loads
    into today's `SSJDNConfig`; a retired option switched on, or a retired value, is refused with
    the option's name and the commit."""
    saved = CACHE / "test" / "fa79b0b744" / "STL_full_SSJDN__3a9abf50__seed0.model" / "config.json"
    raw = json.loads(saved.read_text())["config"]
    assert {"sgs_sharpen", "sgs_fusion", "lsd_gate"} <= set(raw)
    cfg = SSJDNConfig(**without_retired(raw))
    assert cfg.sgs_pool == "multiply" and cfg.stl_kappa == 1.0
    for bad in ({"sgs_fusion": "gate"}, {"lsd_schedule": "anneal"}, {"sgs_decorrelate": 1.0}):
        (option,) = bad
        with pytest.raises(ValueError, match=f"{option}=.*retired.*{RETIRED_AT}"):
            without_retired({**raw, **bad}, "x.json")
    with pytest.raises(ValueError, match=f"lsd_combine='decouple' was retired.*{RETIRED_AT}"):
        without_retired({**raw, "lsd_combine": "decouple"})
    # a sub-option acted only under its parent: dropped whatever its value
    assert "sgs_topk" not in without_retired({**raw, "sgs_topk": 0.9})
    with pytest.raises(TypeError, match="config must be a dict"):
        without_retired([("sgs", "both")])  # type: ignore[arg-type]


def test_a_saved_model_with_retired_fields_reloads(tmp_path: Path) -> None:
    d = make_multiscale_scenes(6, 32, seed=0)
    model = SSJDN.from_data(d, SSJDNConfig(**TINY), seed=0)
    root = model.save(tmp_path / "m")
    meta = json.loads((root / SSJDN.CONFIG).read_text())
    meta["config"].update({"sgs_fusion": "concat", "lsd_without_stl": "same", "sgs_topk": 0.25})
    (root / SSJDN.CONFIG).write_text(json.dumps(meta))
    again = SSJDN.load(root)
    assert again.config == model.config
    meta["config"]["sgs_proj"] = "per_pass"
    (root / SSJDN.CONFIG).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"sgs_proj='per_pass' was retired.*{RETIRED_AT}"):
        SSJDN.load(root)
