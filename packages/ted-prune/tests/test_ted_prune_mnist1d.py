"""MNIST-1D data (generated offline), the CNN, one benchmark run, and the validation rule."""

import pytest
import torch
from ted_prune.bench_mnist1d import READINGS, train_mnist1d, val_winner
from ted_prune.mnist1d import MNIST1DCNN, mnist1d_splits, near_duplicates


def test_splits_noise_and_duplicates_touch_only_training():
    """mnist1d_splits: validation/test stay clean; duplicates copy a few sources with jitter."""
    tr, va, te = mnist1d_splits(400, val_size=100, seed=0)
    tr2, va2, te2 = mnist1d_splits(400, val_size=100, noise=0.2, duplicates=0.3, seed=0)
    assert len(tr) == 220 and len(va) == 100 and len(te) == 80
    assert torch.equal(va.tensors[1], va2.tensors[1]) and torch.equal(te.tensors[0], te2.tensors[0])
    x, y = tr.tensors
    xd, yd, mask = near_duplicates(x, y, 0.3, seed=1)
    assert int(mask.sum()) == round(0.3 * 220)
    dists = torch.cdist(xd[mask].flatten(1), x[~mask].flatten(1)).min(1).values
    assert float(dists.max()) < 0.2 * float(x.std()) * 40**0.5  # each is a near-copy


def test_cnn_head_is_the_feature_layer_and_a_run_reports_its_budget():
    """train_mnist1d: TED at f=0.7 spends about 0.7 and keeps every class."""
    torch.set_num_threads(1)
    tr, va, _ = mnist1d_splits(600, val_size=100, seed=0)
    assert MNIST1DCNN()(tr.tensors[0][:2]).shape == (2, 10)
    r = train_mnist1d("TED", tr, va, epochs=6, f=0.7, seed=0)
    assert abs(r["f"] - 0.7) < 0.01 and r["min_class_kept"] > 0
    assert len(r["sizes"]) == 6 and 0 <= r["accuracy"] <= 100


def _row(name, acc, minc=0.3):
    return {"stage": "val", "method": f"TED:{name}", "metrics": {"accuracy": acc,
            "min_class_kept": minc}}  # fmt: skip


def test_val_winner_requires_class_quotas():
    """val_winner: a global-ranking reading cannot win, however good its accuracy."""
    rows = [_row("prune_residual_global", 90.0), _row("prune_residual_sample", 80.0),
            _row("keep_abs_full", 85.0, minc=0.0), _row("spec", 95.0)]  # fmt: skip
    assert READINGS["prune_residual_global"]["balance"] == "none"
    assert val_winner(rows) == "prune_residual_sample"
    assert val_winner([]) is None


def test_scoring_stage_times_ted_against_full_data_and_checks_the_grid(tmp_path, monkeypatch):
    """run_scoring: full data + TED per budget; re-scoring is part of the scoring time; a TED run
    of the grid's cache with the same config is compared with the re-run (same accuracy, f)."""
    import json

    from ted_prune import bench_mnist1d

    torch.set_num_threads(1)
    monkeypatch.setattr(bench_mnist1d, "SETTINGS", {"clean": bench_mnist1d.SETTINGS["clean"]})
    monkeypatch.setattr(bench_mnist1d, "BUDGETS", (0.7, 0.5))
    cfg = {"num_samples": 700, "epochs": 10, "lr": 1e-2}
    tr, _, te = mnist1d_splits(700, val_size=500, seed=0)
    ref = train_mnist1d("TED", tr, te, 10, 0.5, 0)
    row = {"stage": "test", "setting": "clean", "seed": 0, "method": "TED", "f_target": 0.5,
           "metrics": {"accuracy": ref["accuracy"], "f": ref["f"]}, "config": cfg}  # fmt: skip
    grid = tmp_path / "ted-prune-mnist1d-full"  # a grid's cache in a folder below `out`
    grid.mkdir()
    (grid / "ted-prune-mnist1d-runs.jsonl").write_text(json.dumps(row) + "\n")
    rows = bench_mnist1d.run_scoring(tmp_path, seeds=1, num_samples=700, epochs=10, progress=False)
    assert [(r["setting"], r["f_target"]) for r in rows] == [("clean", 0.7), ("clean", 0.5)]
    assert all(0 < r["rescore"] <= r["overhead"] for r in rows)  # epoch 4 ends with a re-scoring
    assert [r["same_as_grid"] for r in rows] == [None, True]
    text = (tmp_path / "ted-prune-mnist1d-scoring-700x10.md").read_text()
    assert "--stage scoring --num-samples 700 --epochs 10 --seeds 1" in text
    assert "equal the committed grid's TED run in 1 of 1 runs" in text
    # the grid report's goals name the re-timed share next to the grid's own figure
    from maskloop import report

    goals = bench_mnist1d._goals(report.Results("ted-prune", "test", cfg), tmp_path)
    worst = max(r["overhead"] for r in rows)
    verdict = "met" if worst <= 0.05 else "missed"
    assert (
        f"re-timed (700 samples, 10 epochs; `ted-prune-mnist1d-scoring-700x10.json`) | {verdict}"
        in goals
    )
    assert f"max {worst:.3f} (n=2)" in goals


def test_scoring_stage_compares_only_with_a_grid_run_of_the_default_reading() -> None:
    """run_scoring: a cached TED row counts as 'the same run' only if its reading is the default."""
    import inspect

    from ted_prune.bench_mnist1d import PRE_S25C, _is_default_reading
    from ted_prune.ted import TEDPruner

    # the grid's `TED` method: the defaults before session ted-25d (max_weight=4.0)
    defaults = {k: p.default for k, p in inspect.signature(TEDPruner).parameters.items()} | PRE_S25C
    same = [n for n, o in READINGS.items() if all(defaults[k] == v for k, v in o.items())]
    assert len(same) == 1 and _is_default_reading(same[0]) and _is_default_reading("defaults")
    assert not any(_is_default_reading(n) for n in READINGS if n != same[0])
    assert not _is_default_reading("not-a-reading")


def test_wallclock_stage_rounds_warmup_and_resume(tmp_path, monkeypatch):
    """run_wallclock: per seed a warm-up full run (round -1) then rotated rounds of the same runs
    (same data and seed: identical accuracy in every round); a resumed run adds only new seeds."""
    import json

    from ted_prune import bench_mnist1d
    from ted_prune.bench_mnist1d import run_wallclock, wallclock_order

    torch.set_num_threads(1)
    splits = mnist1d_splits(700, val_size=500, seed=0)  # generated once (2 s), for both seeds
    monkeypatch.setattr(bench_mnist1d, "mnist1d_splits", lambda *a, **k: splits)
    assert [wallclock_order(r) for r in range(4)] == [
        ["full", "TED", "random_dynamic"], ["TED", "random_dynamic", "full"],
        ["random_dynamic", "full", "TED"], ["full", "TED", "random_dynamic"]]  # fmt: skip
    kw = {"num_samples": 700, "epochs": 2, "rounds": 2, "progress": False}
    assert run_wallclock(tmp_path, seeds=1, **kw)
    cache = tmp_path / "ted-prune-mnist1d-wallclock-700x2-runs.jsonl"
    first = cache.read_text()
    assert run_wallclock(tmp_path, seeds=2, resume=True, **kw)
    rows = [json.loads(x) for x in cache.read_text().splitlines()]
    assert cache.read_text().startswith(first) and len(rows) == 2 * (1 + 2 * 3)
    for s in (0, 1):
        mine = [r for r in rows if r["seed"] == s]
        assert [(r["round"], r["method"]) for r in mine] == [(-1, "full")] + [
            (i, m) for i in range(2) for m in wallclock_order(i)]  # fmt: skip
        for m in ("full", "TED", "random_dynamic"):
            accs = {r["metrics"]["accuracy"] for r in mine if r["method"] == m}
            assert len(accs) == 1  # every round repeats the same run
    doc = json.loads((tmp_path / "ted-prune-mnist1d-wallclock-700x2.json").read_text())
    assert doc["summary"]["full"]["per_seed_ratio"] == [1.0, 1.0]
    assert doc["summary"]["TED"]["n"] == 2 and doc["summary"]["rounds"] == [2]
    text = (tmp_path / "ted-prune-mnist1d-wallclock-700x2.md").read_text()
    assert "--stage wallclock --num-samples 700 --epochs 2 --seeds 2 --rounds 2" in text
    from maskloop import report  # the grid report's goals name the stage's verdict

    goals = bench_mnist1d._goals(report.Results("ted-prune", "test", {}), tmp_path)
    t = doc["summary"]["TED"]
    verdict = "met" if t["ratio"][0] <= 0.75 else "missed"
    assert (
        f"rounds (700 samples, 2 epochs; `ted-prune-mnist1d-wallclock-700x2.json`) | {verdict}"
        in goals
    )


def test_wallclock_summary_pairs_each_run_with_the_full_run_of_its_round():
    """wallclock_summary: medians over rounds of per-round ratios; the warm-up is left out."""
    from ted_prune.bench_mnist1d import wallclock_summary

    secs = {  # seed -> round -> (full, TED, random_dynamic)
        0: {-1: (20.0,), 0: (10.0, 7.0, 6.0), 1: (8.0, 6.0, 4.0), 2: (9.0, 9.0, 4.5)},
        1: {-1: (12.0,), 0: (10.0, 5.0, 5.0), 1: (10.0, 6.0, 5.0), 2: (10.0, 7.0, 5.0)},
    }
    rows = [{"seed": s, "round": r, "method": m, "metrics": {"seconds": t}}
            for s, per in secs.items() for r, ts in per.items()
            for m, t in zip(("full", "TED", "random_dynamic"), ts)]  # fmt: skip
    out = wallclock_summary(rows)
    assert out["TED"]["per_seed_ratio"] == [0.75, 0.6]  # median of 0.7, 0.75, 1.0 / 0.5, 0.6, 0.7
    assert out["random_dynamic"]["per_seed_ratio"] == [0.5, 0.5]
    assert out["full"]["seconds"][0] == 9.5  # mean of the per-seed medians 9 and 10
    assert abs(out["TED-random_dynamic"]["mean"] - 0.175) < 1e-12
    assert abs(out["warmup_to_full"]["ratio"][0] - (20 / 9 + 1.2) / 2) < 1e-12
    lo, hi = out["TED"]["ratio_ci"]
    assert 0.6 <= lo <= hi <= 0.75


def test_wallclock_settings_share_the_cache_and_get_one_report_each(tmp_path, monkeypatch):
    """run_wallclock(settings=...): each setting's runs use its own data (noise / duplicates
    passed on), land in the one cache whose clean rows stay valid (a resumed run with another
    setting adds rows and reruns nothing), and each setting gets its report under
    `wallclock_name`; the grid's goals name each report's setting; bad settings -> ValueError."""
    import json

    import pytest
    from maskloop import report
    from ted_prune import bench_mnist1d
    from ted_prune.bench_mnist1d import SETTINGS, run_wallclock, wallclock_name
    from ted_prune.cli import build_parser

    torch.set_num_threads(1)
    splits = mnist1d_splits(700, val_size=500, seed=0)
    calls = []
    monkeypatch.setattr(bench_mnist1d, "mnist1d_splits",
                        lambda *a, **k: (calls.append((k["noise"], k["seed"])), splits)[1])  # fmt: skip
    kw = {"seeds": 1, "num_samples": 700, "epochs": 1, "rounds": 1, "progress": False}
    assert run_wallclock(tmp_path, **kw)  # default: clean only
    cache = tmp_path / "ted-prune-mnist1d-wallclock-700x1-runs.jsonl"
    first = cache.read_text()
    assert calls == [(0.0, 0)] and not list(tmp_path.glob("*noise20*"))
    assert run_wallclock(tmp_path, resume=True, settings=("clean", "noise20"), **kw)
    assert calls == [(0.0, 0), (0.2, 0)]  # clean came from the cache
    rows = [json.loads(x) for x in cache.read_text().splitlines()]
    assert cache.read_text().startswith(first) and len(rows) == 2 * (1 + 3)
    assert [r["setting"] for r in rows] == ["clean"] * 4 + ["noise20"] * 4
    assert wallclock_name("clean", 700, 1) == "ted-prune-mnist1d-wallclock-700x1"
    for st in ("clean", "noise20"):
        doc = json.loads((tmp_path / f"{wallclock_name(st, 700, 1)}.json").read_text())
        assert {r["setting"] for r in doc["rows"]} == {st} and doc["summary"]["TED"]["n"] == 1
        text = (tmp_path / f"{wallclock_name(st, 700, 1)}.md").read_text()
        assert ("--settings noise20" in text) == (st == "noise20")
        assert ("20% of training labels flipped" in text) == (st == "noise20")
    goals = bench_mnist1d._goals(report.Results("ted-prune", "test", {}), tmp_path)
    assert "| noise20, f=0.7: wall-clock <= 0.75x full, warm-up" in goals
    assert "`ted-prune-mnist1d-wallclock-noise20-700x1.json`" in goals
    for bad in ("noise20", (), ("clean", "clean"), ("noise30",)):
        with pytest.raises(ValueError, match="settings"):
            run_wallclock(tmp_path, resume=True, settings=bad, **kw)
    bench = build_parser().subcommands["bench"]
    choices = next(a.choices for a in bench._actions if a.dest == "settings")
    assert tuple(choices) == tuple(SETTINGS)


def test_scoring_report_does_not_claim_unchanged_selections_when_runs_differ_from_the_grid():
    from ted_prune import bench_mnist1d

    def row(setting, f, same):
        return {"setting": setting, "f_target": f, "overhead": 0.06, "rescore": 0.01,
                "full_epoch_seconds": 0.5, "same_as_grid": same}  # fmt: skip

    same = bench_mnist1d._scoring_report([row("clean", 0.7, True), row("dup30", 0.7, None)], "c")
    assert "in 1 of 1 runs (the cheaper scoring changes no score and no selection)" in same
    differ = bench_mnist1d._scoring_report([row("clean", 0.7, False), row("dup30", 0.7, True)], "c")
    assert "in 1 of 2 runs: these runs differ from the grid's" in differ
    assert "changes no score" not in differ and "**missed** (mean 0.060" in differ


def test_rescoring_batch_changes_no_score_and_no_selection():
    """Re-scoring in batches of 7 or 64 (float64 CNN): the same scores, bit for bit, and the same
    selections every epoch; the CNN's forward gives each sample the same bits at any batch, which
    is what lets the benchmark choose its re-scoring batch (`RESCORE_BATCH`) by speed alone."""
    from maskloop import FeatureHook, IndexedDataset
    from ted_prune import TEDPruner
    from torch.nn import functional as F
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    tr, _, _ = mnist1d_splits(600, val_size=100, seed=0)
    x, y = tr.tensors[0].double(), tr.tensors[1]
    n, epochs = len(y), 6
    ds = torch.utils.data.TensorDataset(x, y)
    model = MNIST1DCNN().double()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = []
    for batch in (7, 64):
        model.load_state_dict(state)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        p = TEDPruner(n, epochs, keep=0.4, warmup=1, ramp=2, rescore_every=1,
                      precision="float64", seed=3)  # fmt: skip
        loader = DataLoader(IndexedDataset(ds), sampler=p.sampler, batch_size=32)
        hook = FeatureHook(model)
        rows, rescored = [], 0
        for epoch in range(epochs):
            sel = p.select(epoch)
            for xb, yb, idx in loader:
                logits = model(xb)
                loss = p.update(F.cross_entropy(logits, yb, reduction="none"), idx, logits,
                                hook.features, yb)  # fmt: skip
                opt.zero_grad()
                loss.backward()
                opt.step()
            rescored += p.end_epoch(model, ds, batch_size=batch)["scored"]
            rows.append((sel.indices.clone(), p.weight.clone(), p.scores.clone()))
        hook.remove()
        assert rescored > 0  # the re-scoring passes ran
        out.append(rows)
    for (i7, w7, s7), (i64, w64, s64) in zip(*out):
        assert torch.equal(i7, i64) and torch.equal(w7, w64) and torch.equal(s7, s64)


def test_rescore_batch_size_is_checked():
    tr, va, _ = mnist1d_splits(300, val_size=100, seed=0)
    with pytest.raises(ValueError, match="rescore_batch_size"):
        train_mnist1d("TED", tr, va, epochs=2, f=0.7, seed=0, rescore_batch_size=0)
    with pytest.raises(TypeError, match="rescore_batch_size"):
        train_mnist1d("TED", tr, va, epochs=2, f=0.7, seed=0, rescore_batch_size=256.0)
