"""Session 32's clean-up (issue 18): the rejected readings are gone from the library, and what the
README's current tables rest on still resumes from the committed caches without re-running a job.

The retired options' code and bench rows are at commit e375864; these tests fail if a retired
option comes back by accident, if a kept bench row changes its cache key, or if ``--resume`` over a
committed grid of a kept row would compute anything.
"""

from __future__ import annotations

import json
import re
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from cdhm import CDHMClassifier
from cdhm.bench import (
    ABLATIONS,
    BASELINE_VARIANTS,
    BENCH_CDHM,
    DEFAULT_LADDER,
    DEFAULT_ROW,
    METHODS,
    OPTION_VARIANTS,
    BenchConfig,
    _cache_key,
    _estimator,
    run_bench,
)
from cdhm.bench_cwru import CWRUBenchConfig, run_cwru_bench

ROOT = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "cdhm-next"

#: The CDHMClassifier options retired in session 32 (each rejected on validation).
RETIRED_OPTIONS = (
    "align_steps",
    "lambda_hsic",
    "align_warmup",
    "lambda_ent",
    "lambda_lmmd",
    "lmmd_start",
    "lambda_div",
    "align_gate",
    "fault_steps",
    "beta_s",
    "align_direction",
    "align_ramp",
    "lambda_zy",
    "lambda_sz",
    "lambda_pl",
    "pseudo_label",
    "pl_threshold",
    "sticky_s",
    "generative_from",
    "target_z",
    "lambda_compact",
    "lambda_im",
    "s_dropout",
    "target_skip",
)

#: Committed grids of rows the README's current tables need, with the rows a rerun asks for.
KEPT_GRIDS = {
    # the earlier default's complete test grid (README "Benchmark"): its goal rows (the other
    # rows of that grid are baselines and ablations the previous test shows are still built)
    "cdhm_cache.json": ("CDHM", "MK-MMD", "CDHM-entangled", "CDHM-no-align", "CDHM-no-temporal"),
    # the current default's test read and its ablation ladder (session 28)
    "cdhm_test_adda_cache.json": (*DEFAULT_LADDER, "MK-MMD+evidence-all", "MK-MMD"),
    # the validation grids of the current default (its choice, and the last two sessions' rows)
    "cdhm_validate_s28_cache.json": (
        "CDHM+adda+stickyz0.25+optcarry+sskip",
        DEFAULT_ROW,
        "CDHM-no-temporal+adda+optcarry+sskip",
    ),
    "cdhm_validate_s31_cache.json": (DEFAULT_ROW, DEFAULT_LADDER[-1]),
    # rule s33b's grid (session 33): its default row, next to the retired +ovl0.5 rows
    "cdhm_validate_s33b_cache.json": (DEFAULT_ROW,),
}


def _grid(name: str) -> tuple[dict, str, list[int], list[tuple[int, int]]]:
    """A committed cache, its one key, and the seeds and tasks its jobs hold."""
    cache = json.loads((ROOT / name).read_text())
    assert len(cache) == 1, name
    key, runs = next(iter(cache.items()))
    seeds = sorted({int(job.split("|")[1]) for job in runs})
    tasks = sorted({tuple(int(d) for d in job.split("|")[0].split("->")) for job in runs})
    return cache, key, seeds, tasks


def test_retired_options_are_gone_and_refused():
    """No retired option is a parameter any more; passing one is a TypeError naming it, and the
    retired alignments are a ValueError naming ``alignment`` and what is allowed."""
    params = CDHMClassifier().get_params()
    assert not set(RETIRED_OPTIONS) & set(params)
    for name in RETIRED_OPTIONS:
        with pytest.raises(TypeError, match=name):
            CDHMClassifier(**{name: 0.0})
    for alignment in ("lmmd", "mmd-std", "centroid-balanced"):
        with pytest.raises(
            ValueError, match=r"alignment must be one of \('dann', 'mmd', 'jmmd', None\)"
        ):
            CDHMClassifier(alignment=alignment, epochs=1)._check_params()
    with pytest.raises(ValueError, match="s_skip"):
        CDHMClassifier(s_skip="linear-only")._check_params()


def test_retired_bench_rows_are_unknown_and_kept_rows_build():
    """Every row a committed cdhm-next cache holds is either buildable by the bench or a retired
    reading's row, which the bench now refuses naming the method; the default row is the library
    default's options exactly."""
    known = {*METHODS, *ABLATIONS, *OPTION_VARIANTS, *BASELINE_VARIANTS}
    cfg = BenchConfig()
    retired = set()
    for f in sorted(ROOT.glob("*_cache.json")):
        for runs in json.loads(f.read_text()).values():
            for method in {m for job in runs.values() for m in job}:
                if method == "physics":  # no estimator of _estimator's: run_task builds it
                    continue
                if method in known:
                    _estimator(method, cfg, 0)
                else:
                    retired.add(method)
    assert {"CDHM-lmmd", "CDHM+adda+stickyz0.25+optcarry+sskip+sar1+cbal"} <= retired
    for method in retired:
        with pytest.raises(ValueError, match="unknown method"):
            _estimator(method, cfg, 0)
    row = _estimator(DEFAULT_ROW, cfg, 3).get_params()
    lib = CDHMClassifier(n_segments=cfg.n_segments, epochs=cfg.epochs, seed=3, progress=False)
    resolved = {"sticky_z": 0.25, "target_opt_state": "source", "s_transition": "ar1"}
    assert row == {**lib.get_params(), **resolved}
    assert lib._sticky_z() == 0.25 and lib._target_opt_state() == "source"
    assert lib._s_transition() == "ar1"
    assert set(BENCH_CDHM) <= set(lib.get_params())


def test_retired_options_keep_their_place_in_the_cache_key():
    """Two retired options were in every key at their then default value ("last", 0.0): the key
    of the default config still holds them, byte for byte as committed."""
    _, key, _, _ = _grid("cdhm_validate_s31_cache.json")
    assert _cache_key(BenchConfig()) == key
    defaults = json.loads(key)["cdhm_defaults"]
    assert defaults["align_steps"] == "last" and defaults["lambda_hsic"] == 0.0


@pytest.mark.parametrize("name", sorted(KEPT_GRIDS))
def test_resume_over_a_committed_grid_reruns_nothing(tmp_path, monkeypatch, name):
    """`cdhm bench ... --resume` over a committed grid of kept rows computes no job: every
    (task, seed, method) comes from the cache (a computed job would raise here)."""
    import cdhm.bench

    def refuse(*args, **kwargs):
        raise AssertionError(f"{name}: a job was computed, args {args[:3]}")

    monkeypatch.setattr(cdhm.bench, "run_task", refuse)
    cache, key, seeds, tasks = _grid(name)
    fields = {k: v for k, v in json.loads(key).items() if k != "cdhm_defaults"}
    cfg = BenchConfig(**fields, seeds=seeds, tasks=tasks, methods=KEPT_GRIDS[name], ablations=False)
    assert _cache_key(cfg) == key
    shutil.copy(ROOT / name, tmp_path / name)
    stem = name.removesuffix("_cache.json")
    res, _ = run_bench(out=tmp_path, config=cfg, command="t", progress=False, name=stem)
    assert set(res.methods) == set(KEPT_GRIDS[name])
    assert "Partial run" not in (tmp_path / f"{stem}.md").read_text()


def test_resume_over_the_committed_cwru_grid_reruns_nothing(tmp_path, monkeypatch):
    """The CWRU load-transfer grid (CDHM and the baselines) resumes without computing a job."""
    import cdhm.bench_cwru

    def refuse(*args, **kwargs):
        raise AssertionError("a CWRU job was computed")

    monkeypatch.setattr(cdhm.bench_cwru, "_run_methods", refuse)
    monkeypatch.setattr(cdhm.bench_cwru, "_seed_data", refuse)
    name = "cdhm_cwru_cache.json"
    _, key, seeds, tasks = _grid(name)
    fields = {k: v for k, v in json.loads(key).items() if k != "cdhm_defaults"}
    cfg = CWRUBenchConfig(**fields, seeds=seeds, tasks=tasks)
    assert _cache_key(cfg) == key
    shutil.copy(ROOT / name, tmp_path / name)
    res, _ = run_cwru_bench(config=cfg, out=tmp_path, command="t", progress=False)
    assert {"CDHM", "MK-MMD", "DANN"} <= set(res.methods)


# --------------------------------------------------------------------------- session 34
#: The readings retired in session 34 (rejected in session 33), their rows, and their last commit.
S34_COMMIT = "7b1d953"
S34_ROWS = (
    DEFAULT_ROW + "+kls0",
    DEFAULT_ROW + "+ovl0.5",
    "CDHM-no-temporal+adda+optcarry+sskip+ovl0.5",
)
S33B_CACHE = ROOT / "cdhm_validate_s33b_cache.json"


def test_s34_retired_options_are_gone():
    """``kl_warmup_s`` is no CDHMClassifier parameter and ``segment_overlap`` no argument of the
    front end; passing either is a TypeError naming it; their helpers and row tables are gone."""
    import cdhm.bench
    import cdhm.causal_hmm
    import cdhm.data
    from cdhm.data import order_envelope_segments

    assert "kl_warmup_s" not in CDHMClassifier().get_params()
    with pytest.raises(TypeError, match="kl_warmup_s"):
        CDHMClassifier(kl_warmup_s=0.0)
    x = np.random.default_rng(0).standard_normal((2, 8192))
    with pytest.raises(TypeError, match="segment_overlap"):
        order_envelope_segments(x, 12000.0, 1800.0, 4, segment_overlap=0.5)
    assert order_envelope_segments(x, 12000.0, 1800.0, 4).shape == (2, 4 * 120)
    assert not hasattr(cdhm.data, "overlapping_segment_count")
    assert not hasattr(cdhm.causal_hmm, "kl_warmup_weight")
    for name in ("SEGMENT_OVERLAP", "S33B_OVERLAP_VARIANTS", "S33_KL_S_VARIANTS", "method_steps"):
        assert not hasattr(cdhm.bench, name), name
    assert not set(S34_ROWS) & set(OPTION_VARIANTS)


@pytest.mark.parametrize("row", S34_ROWS)
def test_s34_retired_rows_raise_naming_their_commit(row):
    """A retired row cannot be fitted any more: ValueError naming the row and commit 7b1d953."""
    with pytest.raises(ValueError, match=rf"unknown method .*{S34_COMMIT}"):
        _estimator(row, BenchConfig(), 0)


def test_saved_config_naming_kl_warmup_s_loads_only_at_its_neutral_value(tmp_path):
    """A config saved before session 34 holds ``kl_warmup_s`` (None by default): it loads and
    predicts as saved; a config holding another value is refused naming the option and 7b1d953."""
    from cdhm.data import simulate_domain

    torch.set_num_threads(2)
    kw = {"recordings_per_class": 1, "windows_per_recording": 4, "window": 256}
    a = simulate_domain("L0", 0, seed=0, tier="mild", **kw)
    b = simulate_domain("D", 1, seed=0, tier="hard", **kw)
    est = CDHMClassifier(n_segments=4, epochs=1, s_dim=2, z_dim=2, hidden=8, seed=0)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    est.save(tmp_path / "m")
    cfg_file = tmp_path / "m" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    assert "kl_warmup_s" not in cfg["params"]
    cfg["params"]["kl_warmup_s"] = None  # as session 33's code wrote it
    cfg_file.write_text(json.dumps(cfg))
    again = CDHMClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(again.predict_proba(b.x), est.predict_proba(b.x))
    assert again.get_params() == est.get_params()
    cfg["params"]["kl_warmup_s"] = 0.0
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(
        ValueError, match=rf"config.json.*kl_warmup_s=0.0 was retired.*{S34_COMMIT}"
    ):
        CDHMClassifier.load(tmp_path / "m")


def test_rule_s33b_rows_are_still_read_by_the_decision_script(capsys):
    """Rule s33b's committed cache keeps its key (the default config's) and ``paired_rule.py``,
    run as the rule says, re-derives the committed paired tables byte for byte from it."""
    import importlib.util

    cache = json.loads(S33B_CACHE.read_text())
    assert list(cache) == [_cache_key(BenchConfig())]
    spec = importlib.util.spec_from_file_location(
        "paired_rule", Path(__file__).resolve().parents[1] / "scripts" / "paired_rule.py"
    )
    rule = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rule)
    nt, d, c = "CDHM-no-temporal+adda+optcarry+sskip+ovl0.5", DEFAULT_ROW, DEFAULT_ROW + "+ovl0.5"
    k = str(S33B_CACHE)
    rule.main([k, nt, d, c, "--task-set", "0db"])
    rule.main([k, d, c, "--task-set", "0db"])
    out = capsys.readouterr().out
    for task in ("A->B", "B->C", "D->B", "D->C", "A->D"):
        rule.main([k, d, c, "--tasks", task])
        out += f"== {task}\n" + capsys.readouterr().out
    # a row against itself prints a zero whose sign is summation noise (-0.00 / +0.00)
    unsign = partial(re.sub, r"([ \[])-0\.00\b", r"\g<1>+0.00")
    assert unsign(out) == unsign((ROOT / "cdhm_validate_s33b_paired.txt").read_text())
    assert "+1.67 [ -0.83,  +4.44] (n=3)" in out  # the rule's (a): C - NT', as committed
