"""Baselines, alignment losses and the bench/CLI plumbing."""

import json

import numpy as np
import pytest
import torch
from cdhm import (
    ABLATIONS,
    AlignedCNNClassifier,
    PhysicsReference,
    coral_loss,
    ganin_lambda,
    grad_reverse,
    make_ablation,
    mk_mmd,
    simulate_domain,
)
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pyro.*")


@pytest.fixture(scope="module")
def toy():
    kw = {"recordings_per_class": 2, "windows_per_recording": 6, "window": 512}
    return simulate_domain("A", 0, **kw), simulate_domain("B", 1, **kw)


def test_alignment_losses_and_grl():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 5, generator=g)
    b = torch.randn(64, 5, generator=g)
    assert float(mk_mmd(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(mk_mmd(a, b + 3)) > 10 * abs(float(mk_mmd(a, b)))
    assert float(coral_loss(a, a)) == pytest.approx(0.0, abs=1e-9)
    assert float(coral_loss(a, 3 * b)) > float(coral_loss(a, b))
    x = torch.ones(3, requires_grad=True)
    grad_reverse(x, 0.5).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -0.5))
    assert ganin_lambda(0) == 0.0 and 0.99 < ganin_lambda(1) < 1.0


@pytest.mark.parametrize("alignment", [None, "dann", "mmd", "coral", "lmmd"])
def test_neural_baselines_fit_predict(toy, alignment):
    a, b = toy
    est = AlignedCNNClassifier(alignment, n_segments=4, epochs=2, hidden=16)
    est.fit(a.x, a.y, b.x)
    pred = est.predict(b.x)
    assert pred.shape == (len(b),) and set(pred) <= set(a.y)
    assert est.transform(b.x).shape == (len(b), 16)
    if alignment is not None:
        assert "align" in est.history_
    if alignment == "dann":  # the domain classifier's accuracy and the GRL weight are logged
        assert all(0.0 <= v <= 1.0 for v in est.history_["domain_acc"])
        assert est.history_["grl_lambda"][-1] > est.history_["grl_lambda"][0]
    with pytest.raises(ValueError, match="alignment"):
        AlignedCNNClassifier("adabn").fit(a.x, a.y)


def test_ablations_are_configured():
    assert set(ABLATIONS) == {
        "CDHM-entangled",
        "CDHM-no-align",
        "CDHM-no-temporal",
        "CDHM-no-cond-head",
    }
    assert make_ablation("CDHM-entangled").entangled
    assert make_ablation("CDHM-no-align").alignment is None
    assert not make_ablation("CDHM-no-temporal").temporal_prior
    with pytest.raises(ValueError, match="unknown ablation"):
        make_ablation("nope")


def test_physics_reference(toy):
    a, b = toy
    ref = PhysicsReference().fit(a.x, a.y, rpm=a.rpm)
    assert ref.score(a.x, a.y, rpm=a.rpm) > 0.9
    assert ref.predict_proba(b.x, rpm=b.rpm).shape == (len(b), 4)
    assert ref.transform(b.x, rpm=b.rpm).shape == (len(b), 230)
    # one speed for every window, from the constructor
    same = PhysicsReference(rpm=float(a.rpm[0])).fit(a.x, a.y)
    np.testing.assert_array_equal(same.predict(b.x, rpm=b.rpm), ref.predict(b.x, rpm=b.rpm))
    with pytest.raises(ValueError, match="rpm must be finite and > 0"):
        ref.predict(b.x, rpm=-1.0)
    with pytest.raises(ValueError, match="rpm must be a scalar or have shape"):
        ref.predict(b.x, rpm=b.rpm[:3])
    with pytest.raises(ValueError, match="rpm is required"):
        PhysicsReference().fit(a.x, a.y)


def test_physics_reference_stores_arguments_and_validates_in_fit(toy):
    a, _ = toy
    est = PhysicsReference(fs=-1.0, C="big", highpass_hz=1e9)
    assert est.get_params() == {"fs": -1.0, "C": "big", "highpass_hz": 1e9, "rpm": None}
    with pytest.raises(ValueError, match="fs must be"):
        est.fit(a.x, a.y, rpm=a.rpm)
    with pytest.raises(TypeError, match="C must be a real number"):
        est.set_params(fs=12000.0).fit(a.x, a.y, rpm=a.rpm)
    with pytest.raises(ValueError, match="highpass_hz must be"):
        est.set_params(C=1.0).fit(a.x, a.y, rpm=a.rpm)
    with pytest.raises(NotFittedError):
        PhysicsReference().predict(a.x, rpm=a.rpm)


def test_physics_reference_in_sklearn_tools(toy):
    a, _ = toy
    est = PhysicsReference(C=0.5, rpm=float(a.rpm[0]))
    c = clone(est)
    assert c.get_params() == est.get_params() and c is not est
    scores = cross_val_score(est, a.x, a.y, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    grid = GridSearchCV(est, {"C": [0.1, 1.0]}, cv=2).fit(a.x, a.y)
    assert grid.best_params_["C"] in (0.1, 1.0)
    pipe = make_pipeline(FunctionTransformer(lambda x: 2.0 * x), clone(est)).fit(a.x, a.y)
    assert set(pipe.predict(a.x)) <= set(a.y)


def _tiny_bench_config(**kw):
    """A one-task, one-epoch benchmark config on a few short recordings (report-writing tests)."""
    from cdhm.bench import BenchConfig

    base = dict(
        tasks=[(0, 1)],
        epochs=1,
        recordings_per_class=2,
        windows_per_recording=2,
        window=1024,
        n_segments=4,
        ablations=False,
    )
    return BenchConfig(**{**base, **kw})


def test_bench_tiny_writes_report(tmp_path):
    from cdhm.bench import BenchConfig, run_bench

    cfg = _tiny_bench_config(seeds=[0, 1])
    assert cfg.front_end == "order-envelope"
    res, text = run_bench(out=tmp_path, config=cfg, command="test", progress=False)
    for ext in ("md", "json", "png"):
        assert (tmp_path / f"cdhm.{ext}").exists()
    doc = json.loads((tmp_path / "cdhm.json").read_text())
    assert doc["package"] == "cdhm"
    assert doc["config"]["front_end"] == "order-envelope"
    assert "probe_s_domain" in res.records[0].metrics
    assert "source-only (raw)" in res.methods
    dann = [r for r in res.records if r.method == "DANN"]
    assert all("domain_clf_acc_last_epoch" in r.metrics for r in dann)
    assert all("acc_source" in r.metrics for r in res.records)
    assert "Goals of the issue" in text and "source-test acc" in text
    with pytest.raises(ValueError, match="front_end must be one of"):
        BenchConfig(front_end="stft")
    with pytest.raises(ValueError, match="must divide the window"):
        BenchConfig(window=1000, n_segments=3)
    assert np.isfinite([r.metrics["acc_target"] for r in res.records]).all()


def test_bench_select_report_without_source_only(tmp_path):
    """A dev-seed run of CDHM variants only (as `cdhm bench --select`) writes its report."""
    from cdhm.bench import DEV_SEEDS, run_bench

    cfg = _tiny_bench_config(seeds=[DEV_SEEDS[0]], methods=("CDHM", "CDHM-dann"))
    res, text = run_bench(out=tmp_path, config=cfg, command="t", progress=False, name="sel")
    assert res.methods == ["CDHM", "CDHM-dann"]
    md = (tmp_path / "sel.md").read_text()
    assert "Δ vs CDHM" in md and "dev seeds" in md and "not a test result" in md


def test_cli_version(capsys):
    from cdhm.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == "0.1.0"


def _walk(parser):
    import argparse

    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _walk(sub)


def test_cli_every_option_has_help_and_shared_flags():
    """Walk the parser: every option of every subcommand has help text; the shared flags exist."""
    from cdhm.cli import build_parser

    parser = build_parser()
    seen = set()
    for p in _walk(parser):
        for action in p._actions:
            if action.option_strings:
                assert action.help, f"{p.prog} {action.option_strings} has no help"
                seen.update(action.option_strings)
    for flag in ("--quick", "--out", "--resume", "--seed", "--threads", "--seeds", "--select",
                 "--max-minutes", "--tier", "--methods", "--front-end", "--summary-json", "--cwru",
                 "--cwru-root", "--validate", "--val-seeds", "--val-seed-start",
                 "--name", "--segments"):  # fmt: skip
        assert flag in seen
    args = parser.parse_args(["bench", "--quick"])
    assert str(args.out) == "cdhm-bench" and not args.resume and args.threads == 2
    assert parser.parse_args(["demo", "--out", "m"]).demo_out == "m"


def test_cli_bench_passes_flags_to_run_bench(monkeypatch, tmp_path):
    """cdhm bench maps --seed/--seeds/--resume/--threads/--select/--methods onto run_bench."""
    import cdhm.bench
    from cdhm.bench import DEFAULT_LADDER, DEV_SEEDS, BenchConfig, _cache_key
    from cdhm.cli import main

    calls = []
    monkeypatch.setattr(cdhm.bench, "run_bench", lambda **kw: calls.append(kw) or (None, "table"))
    out = tmp_path / "res"
    argv = ["bench", "--quick", "--out", str(out), "--seed", "3", "--seeds", "2", "--threads", "1"]
    assert main([*argv, "--resume", "--max-minutes", "7"]) == 0
    kw = calls[-1]
    assert kw["out"] == out and kw["resume"] and kw["threads"] == 1 and kw["max_minutes"] == 7
    assert kw["config"].seeds == [3, 4] and len(kw["config"].tasks) == 3
    assert kw["command"] == "cdhm bench --quick --seed 3 --seeds 2"
    assert main(["bench", "--select", "--methods", "CDHM,MK-MMD"]) == 0
    kw = calls[-1]
    assert kw["config"].seeds == list(DEV_SEEDS) and not kw["resume"]
    assert kw["config"].methods == ("CDHM", "MK-MMD") and kw["name"] == "cdhm_select"
    assert str(kw["out"]) == "cdhm-bench"
    assert main(["bench", "--validate", "--resume"]) == 0
    kw = calls[-1]
    assert kw["name"] == "cdhm_validate" and kw["command"] == "cdhm bench --validate"
    assert kw["config"].seeds == [100, 101, 102] and kw["config"].tasks == [
        (0, 1),
        (1, 2),
        (3, 1),
        (3, 2),
    ]
    assert kw["config"].methods == DEFAULT_LADDER  # the library default's row and its rungs
    n = len(calls)
    for extra in (["--seeds", "3"], ["--seed", "7"], ["--select"], ["--quick"]):
        assert main(["bench", "--validate", *extra]) == 2  # its seeds and tasks are its own
    assert len(calls) == n
    assert not {(0, 2), (1, 3), (3, 0)} & set(kw["config"].tasks)  # never a test task
    argv = ["bench", "--validate", "--val-seeds", "6", "--name", "cdhm_validate_swap"]
    assert main([*argv, "--methods", "CDHM,CDHM-dann"]) == 0
    kw = calls[-1]
    assert kw["config"].seeds == [100, 101, 102, 103, 104, 105]
    assert kw["name"] == "cdhm_validate_swap" and kw["config"].methods == ("CDHM", "CDHM-dann")
    assert kw["command"] == (
        "cdhm bench --validate --val-seeds 6 --methods 'CDHM,CDHM-dann' --name cdhm_validate_swap"
    )
    assert main([*argv, "--val-seed-start", "106", "--methods", "CDHM,MK-MMD+adda"]) == 0
    kw = calls[-1]
    assert kw["config"].seeds == [106, 107, 108, 109, 110, 111]  # a fresh draw, same tasks
    assert kw["config"].tasks == [(0, 1), (1, 2), (3, 1), (3, 2)]
    assert kw["command"] == (
        "cdhm bench --validate --val-seeds 6 --val-seed-start 106 --methods 'CDHM,MK-MMD+adda' "
        "--name cdhm_validate_swap"
    )
    assert kw["config"].n_segments == 4  # the default T, not in the command
    assert (
        main([*argv, "--val-seed-start", "148", "--methods", "CDHM+adda", "--segments", "8"]) == 0
    )
    kw = calls[-1]
    assert kw["config"].n_segments == 8 and kw["config"].seeds == list(range(148, 154))
    assert kw["command"].endswith("--methods 'CDHM+adda' --segments 8 --name cdhm_validate_swap")
    assert _cache_key(kw["config"]) != _cache_key(BenchConfig())  # runs of T = 4 never reused
    n = len(calls)
    assert main(["bench", "--quick", "--segments", "3"]) == 2  # 3 does not divide 8192
    assert main(["bench", "--cwru", "--segments", "8"]) == 2  # the simulated bench only
    assert len(calls) == n
    with pytest.raises(SystemExit):
        main(["bench", "--segments", "0"])
    assert main(["bench", "--quick", "--val-seeds", "4"]) == 2  # only with --validate
    assert main(["bench", "--quick", "--val-seed-start", "106"]) == 2  # only with --validate
    assert main(["bench", "--validate", "--val-seed-start", "4"]) == 2  # a test-protocol seed
    assert main(["bench", "--quick", "--name", "../x"]) == 2  # a file name stem, not a path
    assert len(calls) == n
    with pytest.raises(SystemExit):
        main(["bench", "--seeds", "0"])


def test_default_alignment_is_mmd_and_keys_the_bench_cache(monkeypatch):
    """CDHM's default alignment is MK-MMD (the dev-seed choice); the old DANN default is the named
    variant "CDHM-dann", and cached bench runs of another default are never reused."""
    import functools

    import cdhm.bench
    from cdhm.bench import VARIANTS, BenchConfig, _cache_key
    from cdhm.causal_hmm import CDHMClassifier

    assert CDHMClassifier().alignment == "mmd"
    assert VARIANTS["CDHM-dann"] == {"alignment": "dann"}
    key = _cache_key(BenchConfig())
    assert json.loads(key)["cdhm_defaults"]["alignment"] == "mmd"
    monkeypatch.setattr(
        cdhm.bench, "CDHMClassifier", functools.partial(CDHMClassifier, alignment="dann")
    )
    old = _cache_key(BenchConfig())
    assert old != key and json.loads(old)["cdhm_defaults"]["alignment"] == "dann"
    # an option added later stays out of the key at its "off" value: earlier caches stay valid
    assert "target_encoder" not in json.loads(key)["cdhm_defaults"]
    monkeypatch.setattr(
        cdhm.bench, "CDHMClassifier", functools.partial(CDHMClassifier, adapt_start=0.3)
    )
    assert json.loads(_cache_key(BenchConfig()))["cdhm_defaults"]["adapt_start"] == 0.3


def test_baseline_fault_steps_all_averages_step_logits_and_aligns_every_step(toy):
    """AlignedCNNClassifier(fault_steps="all"): logits = mean_t classifier(h_t), the last h_t is
    the usual feature, and MK-MMD is taken between the pooled h_t of source and target."""
    a, b = toy
    est = AlignedCNNClassifier("mmd", fault_steps="all", n_segments=4, epochs=1, hidden=16)
    est.fit(a.x, a.y, b.x)
    net = est.net_
    x = est._tensor(b.x[:5])
    with torch.no_grad():
        h = net.step_features(x)
        assert torch.allclose(h[:, -1], net.features(x), atol=1e-6)
        want = torch.softmax(net.classifier(h).mean(1), -1).numpy()
    np.testing.assert_allclose(est.predict_proba(b.x[:5]), want, rtol=1e-5, atol=1e-6)
    batch = {
        "xs": est._tensor(a.x[:6]),
        "ys": torch.from_numpy(np.searchsorted(est.classes_, a.y[:6])),
        "xt": est._tensor(b.x[:6]),
    }
    _, logs = est._step(batch, 0.5)
    with torch.no_grad():
        hs = net.step_features(torch.cat([batch["xs"], batch["xt"]])).reshape(-1, 16)
        want_mmd = float(mk_mmd(hs[:24], hs[24:]))
    assert logs["align"] == pytest.approx(want_mmd, rel=1e-5)
    with pytest.raises(ValueError, match="fault_steps must be one of"):
        AlignedCNNClassifier("mmd", fault_steps="mean", n_segments=4).fit(a.x, a.y)


def test_class_swaps_finds_a_class_sent_to_another_and_rejects_bad_input():
    """class_swaps: a true class with >= share of its windows predicted as one other class."""
    from cdhm.bench import class_swaps

    true = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    pred = [1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 2, 0, 1, 2, 2]
    assert class_swaps(true, pred) == [(0, 1), (1, 0)]  # 3/5 each; class 2 spreads its errors
    assert class_swaps(true, pred, share=0.7) == []
    assert class_swaps(true, true) == []
    with pytest.raises(ValueError, match="true and pred"):
        class_swaps(true, pred[:-1])
    with pytest.raises(ValueError, match="share"):
        class_swaps(true, pred, share=1.5)


def test_bench_goal_rows_name_the_adopted_baseline_variant(tmp_path):
    """With an adopted MK-MMD variant in the run, the goals table gives CDHM − best of the issue's
    baselines and, on its own line, CDHM − best of them with the adopted variant."""
    from cdhm.bench import run_bench

    cfg = _tiny_bench_config(seeds=[0], methods=("CDHM", "MK-MMD", "MK-MMD+evidence-all"))
    res, text = run_bench(out=tmp_path, config=cfg, command="test", progress=False)
    goals = text.split("Goals of the issue")[1]
    assert "CDHM − best of MK-MMD (MK-MMD) ≥ +2 points" in goals
    assert "CDHM − best of MK-MMD/MK-MMD+evidence-all (" in goals
    assert {r.method for r in res.records} == {"CDHM", "MK-MMD", "MK-MMD+evidence-all"}


@pytest.mark.parametrize("ramp", ["ganin", "linear"])
def test_baseline_align_ramp_weights_the_alignment_as_written(toy, ramp):
    """AlignedCNNClassifier(align_ramp=...): the step loss is CE + lambda_align w(p) MK-MMD(h_s, h_t)
    with w = ganin_lambda(p) (the default, unchanged) or w = p (float64, same batch)."""
    a, b = toy
    est = AlignedCNNClassifier(
        "mmd", lambda_align=0.7, align_ramp=ramp, n_segments=4, epochs=1, hidden=16, progress=False
    )
    est.fit(a.x, a.y, b.x)
    est.net_.double()
    batch = {
        "xs": est._tensor(a.x[:6]).double(),
        "ys": torch.from_numpy(np.searchsorted(est.classes_, a.y[:6])),
        "xt": est._tensor(b.x[:6]).double(),
    }
    for p in (0.0, 0.25, 1.0):
        loss, logs = est._step(batch, p)
        w = ganin_lambda(p) if ramp == "ganin" else p
        assert logs["align_weight"] == w and logs["align"] > 1e-6
        want = logs["ce"] + 0.7 * w * logs["align"]
        assert float(loss.detach()) == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert est.history_["align_weight"][-1] > 0
    for bad in ("Linear", None, 1):
        with pytest.raises(ValueError, match="align_ramp must be one of"):
            AlignedCNNClassifier("mmd", align_ramp=bad, n_segments=4, epochs=1).fit(a.x, a.y)


def test_bench_cdhm_names_pin_the_shared_encoder_and_keep_their_cache_key(monkeypatch):
    """The library default is target_encoder="adapted" (session 18), but the bench's CDHM, its
    ablations and its variants still build the shared-encoder model of their committed rows
    (BENCH_CDHM) unless the name is an "adda" one or cdhm_kwargs says otherwise, and the cache key
    is the one the shared default had (rerunning a committed command reuses its rows)."""
    import functools

    import cdhm.bench
    from cdhm.bench import ABLATIONS, OPTION_VARIANTS, BenchConfig, _cache_key, _estimator
    from cdhm.causal_hmm import CDHMClassifier

    assert CDHMClassifier().target_encoder == "adapted"
    cfg = BenchConfig()
    for name in ["CDHM", *ABLATIONS, *OPTION_VARIANTS]:
        want = "adapted" if "adda" in name else "shared"
        assert _estimator(name, cfg, 0).target_encoder == want, name
    own = BenchConfig(cdhm_kwargs={"target_encoder": "adapted"})
    assert _estimator("CDHM-no-align", own, 0).target_encoder == "adapted"
    key = _cache_key(cfg)
    monkeypatch.setattr(
        cdhm.bench, "CDHMClassifier", functools.partial(CDHMClassifier, target_encoder="shared")
    )
    assert _cache_key(cfg) == key  # as if the default were still "shared"


def test_adapt_variants_are_named_options_off_the_cache_key():
    """The ADDA-style variants (and their entangled ablations) are bench variants; at
    target_encoder="shared" the new options stay out of the cache key (committed caches valid)."""
    from cdhm.bench import ADAPT_VARIANTS, BenchConfig, _cache_key, _estimator

    cfg = BenchConfig()
    defaults = json.loads(_cache_key(cfg))["cdhm_defaults"]
    assert "target_encoder" not in defaults and "adapt_start" not in defaults
    assert set(ADAPT_VARIANTS) == {"CDHM+adda"}
    one = _estimator("CDHM+adda", cfg, 2)
    assert (one.target_encoder, one.adapt_start, one.alignment, one.seed) == (
        "adapted",
        0.5,
        "mmd",
        2,
    )
    abl = _estimator("CDHM-entangled+adda", cfg, 0)
    assert (abl.target_encoder, abl.entangled, abl.lambda_c) == ("adapted", True, 0.0)


def _mmd_adda_pair(toy):
    """A fitted MK-MMD+adda estimator (3 steps: split at p = 0.5) in float64 and a batch."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "hidden": 8, "seed": 0, "progress": False}
    est = AlignedCNNClassifier("mmd", target_encoder="adapted", adapt_start=0.5, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    est.net_.double()
    batch = {
        "xs": est._tensor(a.x[:8]).double(),
        "ys": torch.from_numpy(np.searchsorted(est.classes_, a.y[:8])),
        "xt": est._tensor(b.x[:8]).double(),
    }
    return est, batch, kw


def test_mmd_target_encoder_adapted_trains_source_only_then_aligns_only_the_copy(toy):
    """MK-MMD with target_encoder="adapted": before adapt_start the step is the source-only
    cross-entropy and the target copy gets no gradient; after it the loss is
    CE + lambda w(p) MK-MMD(sg(h_src), h_tgt) with w the Ganin ramp of (p - 0.5) / 0.5, the
    alignment's gradient reaches only the target copy, and the copy gets nothing else."""
    from cdhm.models import ganin_lambda

    a, b = toy
    est, batch, kw = _mmd_adda_pair(toy)
    net = est.net_
    assert net.target_split and est.history_["align_weight"][0] == pytest.approx(
        ganin_lambda(1.0) / 3, rel=1e-9
    )
    params = dict(net.named_parameters())
    for p in (0.75, 1.0):
        net.zero_grad()
        loss, logs = est._step(batch, p)
        w = ganin_lambda((p - 0.5) / 0.5)
        assert logs["align_weight"] == w and logs["align"] > 1e-6
        want = logs["ce"] + est.lambda_align * w * logs["align"]
        assert float(loss.detach()) == pytest.approx(want, rel=1e-12)
        ce_grads = torch.autograd.grad(
            torch.nn.functional.cross_entropy(
                net.classifier(net.features(batch["xs"])), batch["ys"]
            ),
            list(params.values()),
            allow_unused=True,
        )
        got = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (k, _), g, g_ce in zip(params.items(), got, ce_grads):
            if k.startswith("target."):
                assert g_ce is None and g is not None and float(g.abs().max()) > 0, k
            elif g_ce is None:
                assert g is None or float(g.abs().max()) == 0.0, k
            else:
                torch.testing.assert_close(g, g_ce, rtol=1e-12, atol=1e-12)  # source: CE only
    fresh = AlignedCNNClassifier("mmd", target_encoder="adapted", adapt_start=0.5, **kw)
    seg = est._tensor(a.x[:1]).shape[2]
    fresh.net_ = fresh._build(seg, 4, 2).double()
    loss, logs = fresh._step(batch, 0.25)
    assert "align" not in logs and not fresh.net_.target_split
    ce = torch.nn.functional.cross_entropy(
        fresh.net_.classifier(fresh.net_.features(batch["xs"])), batch["ys"]
    )
    assert float(loss.detach()) == float(
        ce.detach()
    )  # source-only: no target window seen before the split
    loss.backward()
    assert all(q.grad is None for q in fresh.net_.target.parameters())
    shared = AlignedCNNClassifier("mmd", **kw)._build(seg, 4, 2)
    assert not hasattr(shared, "target_active") and shared.target is None


def test_mmd_target_encoder_adapted_predicts_through_the_copy_and_reloads(toy, tmp_path):
    """An adapted MK-MMD predicts and transforms through its target copy (the split copies the
    source weights exactly), and save / load keeps the split; bad values raise ValueError."""
    a, b = toy
    est, _, kw = _mmd_adda_pair(toy)
    est.net_.float()
    net = est.net_
    x = est._tensor(b.x)
    with torch.no_grad():
        via_copy = net.classifier(net.target["gru"](net.target["encoder"](x))[1][-1])
        via_source = net.classifier(net.gru(net.encoder(x))[1][-1])
    np.testing.assert_allclose(est.predict_proba(b.x), torch.softmax(via_copy, -1), rtol=1e-6)
    assert not torch.allclose(via_copy, via_source)  # the copy moved after the split
    est.save(tmp_path / "m")
    again = AlignedCNNClassifier.load(tmp_path / "m")
    assert again.net_.target_split
    np.testing.assert_array_equal(again.predict_proba(b.x), est.predict_proba(b.x))
    np.testing.assert_array_equal(again.transform(b.x), est.transform(b.x))
    with torch.no_grad():
        net.encoder.net[0].weight.mul_(1.5)
    net.split_target()
    assert torch.equal(net.target["encoder"].net[0].weight, net.encoder.net[0].weight)
    for bad, match in (
        ({"target_encoder": "separate"}, "target_encoder must be one of"),
        ({"target_encoder": "adapted", "adapt_start": 1.0}, "adapt_start"),
        ({"target_encoder": "adapted", "alignment": None}, "target_encoder='adapted' needs"),
    ):
        with pytest.raises(ValueError, match=match):
            AlignedCNNClassifier(**{"alignment": "mmd", **kw, **bad}).fit(a.x, a.y)


def test_sticky_z_variant_is_a_named_option_off_the_cache_key():
    """Session 22's slow working-condition chain is a bench variant on CDHM+adda (no entangled
    twin: there is no z there); at its off value (None) sticky_z stays out of the cache key."""
    from cdhm.bench import STICKY_Z_VARIANTS, BenchConfig, _cache_key, _estimator

    assert "sticky_z" not in json.loads(_cache_key(BenchConfig()))["cdhm_defaults"]
    assert set(STICKY_Z_VARIANTS) == {"CDHM+adda+stickyz0.25", "CDHM-no-align+adda+stickyz0.25"}
    rung = _estimator("CDHM-no-align+adda+stickyz0.25", BenchConfig(), 4)
    assert (rung.alignment, rung.sticky_z, rung.target_encoder) == (None, 0.25, "adapted")
    one = _estimator("CDHM+adda+stickyz0.25", BenchConfig(), 4)
    assert (one.sticky_z, one.target_encoder, one.adapt_start, one.entangled) == (
        0.25,
        "adapted",
        0.5,
        False,
    )


def test_optcarry_variant_is_a_named_option_off_the_cache_key():
    """Session 24's carried optimiser state is a bench variant on the default and on each of its
    ablation rungs (the same options plus the carried state); at its off value ("fresh")
    target_opt_state stays out of the cache key."""
    from cdhm.bench import OPTCARRY_VARIANTS, BenchConfig, _cache_key, _estimator

    assert "target_opt_state" not in json.loads(_cache_key(BenchConfig()))["cdhm_defaults"]
    pairs = {  # each carried-state row and the row it adds the carried state to
        "CDHM+adda+stickyz0.25+optcarry": "CDHM+adda+stickyz0.25",
        "CDHM-entangled+adda+optcarry": "CDHM-entangled+adda",
        "CDHM-no-temporal+adda+optcarry": "CDHM-no-temporal+adda",
        "CDHM-no-align+adda+stickyz0.25+optcarry": "CDHM-no-align+adda+stickyz0.25",
    }
    assert set(OPTCARRY_VARIANTS) == set(pairs)
    for name, base_name in pairs.items():
        one = _estimator(name, BenchConfig(), 4)
        base = _estimator(base_name, BenchConfig(), 4)
        assert (one.target_opt_state, base.target_opt_state) == ("source", "fresh"), name
        assert {k: v for k, v in one.get_params().items() if k != "target_opt_state"} == {
            k: v for k, v in base.get_params().items() if k != "target_opt_state"
        }, name


def test_session26_skip_variants_are_named_options_off_the_cache_key():
    """Session 26's adopted reading (a linear skip from the front end into q(s)'s mean, added to
    the GRU's mean) is a bench variant on the then default that differs from it in s_skip alone; at its off value ("none", pinned in BENCH_CDHM since "linear" became the library
    default) s_skip stays out of the cache key, and every CDHM-family row without "+sskip" (the
    committed rows) is built with "none"."""
    from cdhm.bench import (
        OPTION_VARIANTS,
        SSKIP_LADDER,
        SSKIP_VARIANTS,
        BenchConfig,
        _cache_key,
        _estimator,
    )

    assert "s_skip" not in json.loads(_cache_key(BenchConfig()))["cdhm_defaults"]
    for name in ["CDHM", *OPTION_VARIANTS]:
        if "+sskip" not in name:
            assert _estimator(name, BenchConfig(), 4).s_skip == "none", name
    names = {"CDHM+adda+stickyz0.25+optcarry+sskip": "linear"}
    assert set(SSKIP_VARIANTS) == set(names)
    base = _estimator("CDHM+adda+stickyz0.25+optcarry", BenchConfig(), 4)
    for name, mode in names.items():
        one = _estimator(name, BenchConfig(), 4)
        assert (one.s_skip, base.s_skip) == (mode, "none"), name
        assert {k: v for k, v in one.get_params().items() if k != "s_skip"} == {
            k: v for k, v in base.get_params().items() if k != "s_skip"
        }, name
    rungs = {  # each skip rung and the carried-state rung it adds the skip to
        "CDHM-entangled+adda+optcarry+sskip": "CDHM-entangled+adda+optcarry",
        "CDHM-no-temporal+adda+optcarry+sskip": "CDHM-no-temporal+adda+optcarry",
        "CDHM-no-align+adda+stickyz0.25+optcarry+sskip": "CDHM-no-align+adda+stickyz0.25+optcarry",
    }
    assert set(SSKIP_LADDER) == set(rungs)
    for name, base_name in rungs.items():
        one, rung = _estimator(name, BenchConfig(), 4), _estimator(base_name, BenchConfig(), 4)
        assert (one.s_skip, rung.s_skip) == ("linear", "none"), name
        assert {k: v for k, v in one.get_params().items() if k != "s_skip"} == {
            k: v for k, v in rung.get_params().items() if k != "s_skip"
        }, name


def test_every_committed_cache_key_is_the_key_of_its_config():
    """Every cache committed under docs/benchmarks/cdhm-next keeps its key: rebuilding each
    stored key from its own config fields (BenchConfig, or CWRUBenchConfig for the CWRU cache)
    gives the key back, so options added since (at their off values) have not changed what a
    committed command reuses. (The two caches directly under docs/benchmarks predate the CDHM
    defaults in the key and are not read by any current command.)"""
    from pathlib import Path

    from cdhm.bench import BenchConfig, _cache_key
    from cdhm.bench_cwru import CWRUBenchConfig

    root = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "cdhm-next"
    files = sorted(root.glob("*_cache.json"))
    assert len(files) >= 20, root
    for f in files:
        for key in json.loads(f.read_text()):
            fields = {k: v for k, v in json.loads(key).items() if k != "cdhm_defaults"}
            cls = CWRUBenchConfig if "chunks_per_file" in fields else BenchConfig
            assert _cache_key(cls(**fields)) == key, f.name


def test_source_guide_accuracy_reads_the_source_guide():
    """The bench's source-guide accuracy equals score() without a split (one guide), and with the
    untied target guide it is the accuracy of the source guide's own reading, not the target's."""
    from cdhm.bench import source_guide_accuracy
    from cdhm.causal_hmm import CDHMClassifier

    kw = {"recordings_per_class": 2, "windows_per_recording": 8, "window": 512}
    a = simulate_domain("L0", 0, seed=0, tier="mild", **kw)
    b = simulate_domain("D", 1, seed=0, tier="hard", **kw)
    fit = {"n_segments": 4, "epochs": 2, "s_dim": 4, "z_dim": 4, "hidden": 16, "progress": False}
    shared = CDHMClassifier(target_encoder="shared", **fit).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert source_guide_accuracy(shared, a.x, a.y) == pytest.approx(shared.score(a.x, a.y))
    adda = CDHMClassifier(target_encoder="adapted", **fit).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert adda.net_.target_split
    with torch.no_grad():
        x, c = adda.segments(a.x)
        logits = adda.net_.fault_logits(adda.net_._encode(x, c, adda.net_)["s_loc"])
    expected = float(np.mean(adda.classes_[logits.argmax(1).numpy()] == a.y))
    assert source_guide_accuracy(adda, a.x, a.y) == pytest.approx(expected)


def test_validation_task_sets_keep_the_protocol():
    """ "s18" is the committed validation tasks; "0db" adds A->D only (the 0 dB pseudo-target);
    every set passes the protocol check, which refuses a quick-suite test task, a source that is
    not a quick-suite source, no transfer, a domain out of range, a repeat and a non-pair, each
    naming `tasks`; an unknown set name names `val_tasks`."""
    from cdhm.bench import (
        QUICK_TASKS,
        VALIDATION_TASK_SETS,
        VALIDATION_TASKS,
        check_validation_tasks,
        validation_tasks,
    )
    from cdhm.data import DOMAIN_TIERS

    assert validation_tasks("s18") == list(VALIDATION_TASKS)
    assert validation_tasks("0db") == [*VALIDATION_TASKS, (0, 3)]
    assert DOMAIN_TIERS["hard"][3].snr_db == 0.0  # the added pseudo-target is the 0 dB domain
    assert not {t for t in DOMAIN_TIERS["hard"][:3] if t.snr_db == 0.0}
    for name in VALIDATION_TASK_SETS:
        assert not set(validation_tasks(name)) & set(QUICK_TASKS)
    bad = [
        [(1, 3)],  # B->D: the quick suite's test task of B
        [(2, 3)],  # C is not a quick-suite source
        [(0, 0)],
        [(0, 4)],
        [(0, 1), (0, 1)],
        [(0, 1, 2)],
        [(0.0, 1)],
        [],
        "01",
    ]
    for tasks in bad:
        with pytest.raises(ValueError, match="tasks"):
            check_validation_tasks(tasks)
    with pytest.raises(ValueError, match="val_tasks"):
        validation_tasks("0dB")
    with pytest.raises(TypeError, match="val_tasks"):
        validation_tasks(None)


def test_cli_val_tasks_0db_adds_the_0db_pseudo_target(monkeypatch):
    """--val-tasks 0db runs the validation tasks and A->D, names itself in the command, and needs
    --validate; an unknown set exits."""
    import cdhm.bench
    from cdhm.cli import main

    calls = []
    monkeypatch.setattr(cdhm.bench, "run_bench", lambda **kw: calls.append(kw) or (None, "table"))
    argv = ["bench", "--validate", "--val-seeds", "6", "--val-seed-start", "190"]
    assert main([*argv, "--val-tasks", "0db", "--methods", "CDHM"]) == 0
    kw = calls[-1]
    assert kw["config"].tasks == [(0, 1), (1, 2), (3, 1), (3, 2), (0, 3)]
    assert kw["config"].seeds == list(range(190, 196))
    assert kw["command"] == (
        "cdhm bench --validate --val-seeds 6 --val-seed-start 190 --val-tasks 0db --methods 'CDHM'"
    )
    assert main([*argv, "--methods", "CDHM"]) == 0
    assert calls[-1]["config"].tasks == [(0, 1), (1, 2), (3, 1), (3, 2)]
    assert "--val-tasks" not in calls[-1]["command"]
    n = len(calls)
    assert main(["bench", "--quick", "--val-tasks", "0db"]) == 2  # only with --validate
    with pytest.raises(SystemExit):
        main([*argv, "--val-tasks", "0dB"])
    assert len(calls) == n


def test_session28_ar1_variant_is_a_named_option_off_the_cache_key():
    """Session 28's reading differs from the skip row (the library default's bench name) in
    s_transition alone, and so do its two ladder rungs from the skip ladder's; at its off value
    ("learned") s_transition stays out of the cache key and every other row is built with it; its
    temporal rung is the skip's no-temporal row."""
    from cdhm.bench import (
        OPTION_VARIANTS,
        SAR1_LADDER,
        SAR1_VARIANTS,
        BenchConfig,
        _cache_key,
        _estimator,
    )

    assert "s_transition" not in json.loads(_cache_key(BenchConfig()))["cdhm_defaults"]
    pairs = {
        "CDHM+adda+stickyz0.25+optcarry+sskip+sar1": "CDHM+adda+stickyz0.25+optcarry+sskip",
        "CDHM-entangled+adda+optcarry+sskip+sar1": "CDHM-entangled+adda+optcarry+sskip",
        "CDHM-no-align+adda+stickyz0.25+optcarry+sskip+sar1": (
            "CDHM-no-align+adda+stickyz0.25+optcarry+sskip"
        ),
    }
    assert {*SAR1_VARIANTS, *SAR1_LADDER} == set(pairs)
    on_sar1 = {  # sessions 32 and 34's readings, built on it (sessions 29-31's and 33's rows
        # were retired)
        "CDHM+adda+stickyz0.25+optcarry+sskip+sar1+st0.9",
        "CDHM+adda+stickyz0.25+optcarry+sskip+sar1+jmmd",
    }
    for other in ["CDHM", *OPTION_VARIANTS]:
        if other not in pairs and other not in on_sar1:
            assert _estimator(other, BenchConfig(), 4).s_transition == "learned", other
    for name, base_name in pairs.items():
        one, base = _estimator(name, BenchConfig(), 4), _estimator(base_name, BenchConfig(), 4)
        assert (one.s_transition, base.s_transition) == ("ar1", "learned"), name
        assert {k: v for k, v in one.get_params().items() if k != "s_transition"} == {
            k: v for k, v in base.get_params().items() if k != "s_transition"
        }, name
    rung = _estimator("CDHM-no-temporal+adda+optcarry+sskip", BenchConfig(), 4).get_params()
    assert not rung["temporal_prior"] and rung["s_skip"] == "linear"


@pytest.mark.parametrize("bad", ["MMD", "mmd_std", "centroid", 0])
def test_alignment_rejects_unknown_values_naming_the_allowed_ones(toy, bad):
    from cdhm.causal_hmm import CDHMClassifier

    a, _ = toy
    with pytest.raises(
        ValueError, match=r"alignment must be one of \('dann', 'mmd', 'jmmd', None\)"
    ):
        CDHMClassifier(alignment=bad, epochs=1, progress=False).fit(a.x, a.y)
