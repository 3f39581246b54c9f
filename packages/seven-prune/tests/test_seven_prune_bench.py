"""The benchmark's report writer and goal checks on synthetic records (no model is trained)."""

from dataclasses import replace

import pytest
from maskloop import report
from seven_prune.bench import (
    METHODS,
    build_pruner,
    goals,
    grid_table,
    text_config,
    vision_config,
    write_outputs,
)
from seven_prune.models import tiny_bert


def _results() -> report.Results:
    res = report.Results("seven-prune", "seven-prune bench --quick")
    acc = {
        "dense": 0.80,
        "SEVEN_dyn": 0.79,
        "SEVEN_pre (recon.)": 0.77,
        "magnitude": 0.70,
        "SNIP": 0.75,
        "Taylor (per step)": 0.78,
        "PLATON": 0.76,
    }
    for seed in range(2):
        for m, a in acc.items():
            met = {"accuracy": a + 0.01 * seed, "overhead_run": 0.05}
            if m != "dense":
                met.update({f"sparsity_{k}": 0.8 for k in ("query", "ffn_in", "all")})
            if m in ("SEVEN_dyn", "Taylor (per step)", "PLATON"):
                met["overhead_window"] = 0.08
            res.add(m, seed, met, task="rotten_tomatoes", sparsity=0.0 if m == "dense" else 0.8)
    res.add(
        "SEVEN_dyn",
        0,
        {
            "step_seconds": 0.6,
            "update_seconds": 0.02,
            "cut_seconds": 0.2,
            "overhead": 0.07,
            "overhead_cut_every_step": 0.37,
        },
        task="overhead_probe",
        sparsity=0.8,
    )
    return res


def test_goals_are_checked_against_numbers() -> None:
    lines = "\n".join(goals(_results()))
    assert "SEVEN_dyn vs magnitude at 0.8: Δ +9.00" in lines
    assert "**met**" in lines
    assert "SEVEN_pre (recon.) vs Taylor (per step) at 0.8: Δ -1.00" in lines
    assert "**missed**" in lines
    assert "at the pilot's batch" in lines


def test_write_outputs(tmp_path) -> None:
    path = write_outputs(
        _results(), [text_config(True, None), vision_config(True, None)], tmp_path, 60.0
    )
    text = path.read_text()
    assert "| 0.8 | SEVEN_dyn | 2 | 79.50 ± 0.71 | +9.00" in text
    assert "Achieved sparsity per layer type" in text
    assert "Pruner overhead at the pilot's batch" in text
    assert (tmp_path / "seven-prune.json").is_file()
    assert report.Results.load(tmp_path / "seven-prune.json").methods[0] == "dense"


def test_bench_labels_build_the_right_pruners() -> None:
    cfg = text_config(True, None)
    assert cfg.seeds == 3 and cfg.sparsities == (0.8,)
    full = text_config(False, None)
    assert full.seeds == 3 and full.sparsities == (0.5, 0.7, 0.8, 0.9)
    assert set(full.methods) == set(METHODS) and set(cfg.methods) < set(METHODS)
    # quick is the full grid's 0.8 column for some methods: every run's own settings are the same
    assert replace(cfg, methods=full.methods, sparsities=full.sparsities) == full
    vq, vf = vision_config(True, None), vision_config(False, None)
    assert replace(vq, methods=vf.methods, sparsities=vf.sparsities) == vf
    assert vision_config(True, None).seeds == vision_config(False, None).seeds == 3
    for label in cfg.methods[1:]:
        p = build_pruner(label, tiny_bert(), 0.5, cfg, 0)
        p.remove()
    with pytest.raises(ValueError, match="method must be one of"):
        build_pruner("OBD", tiny_bert(), 0.5, cfg, 0)
    from seven_prune import GradualMagnitudePruner, SevenPruner
    from seven_prune.bench import EPOCH_PLAN, epoch_config

    ecfg = epoch_config(None)
    built = {}
    for label, sp in (*EPOCH_PLAN, ("SEVEN_dyn (fused)", 0.8)):
        if label != "dense":
            built[label] = build_pruner(label, tiny_bert(), sp, ecfg, 0)
            built[label].remove()
    assert isinstance(built["magnitude (GMP)"], GradualMagnitudePruner)
    assert (
        built["magnitude (GMP)"].scope == "global" and built["magnitude (GMP)"].min_density == 0.01
    )
    assert built["magnitude (GMP, per layer)"].scope == "layer"
    assert built["SEVEN_dyn (plain global)"].min_density == 0.0
    assert built["SEVEN_dyn 2:4"].pattern == "2:4" and built["SEVEN_dyn (fused)"].fused
    assert isinstance(built["SEVEN_dyn"], SevenPruner) and built["SEVEN_dyn"].start == ecfg.start
    assert ecfg.start + ecfg.window == round(2 * ecfg.steps / 3) and ecfg.steps == 484


def test_train_and_evaluate_records_overhead_and_sparsity() -> None:
    import torch
    from seven_prune import SevenPruner
    from seven_prune.bench import BenchConfig, _accuracy, train_and_evaluate
    from seven_prune.data import collate_trim, synthetic_sentiment
    from torch.utils.data import DataLoader

    train, test = synthetic_sentiment(128, seed=0), synthetic_sentiment(64, seed=1)
    test.tensors["attention_mask"][::3, 9:] = 0  # uneven lengths: evaluation sorts by length
    cfg = BenchConfig("toy", (), (0.8,), 1, 12, 16, 1e-3, 2, 8, 2, 2)
    model = tiny_bert(seed=0)
    pruner = SevenPruner(model, 0.8, start=cfg.start, window=cfg.window, delta_t=cfg.delta_t)
    met = train_and_evaluate(model, pruner, train, test, cfg, seed=0)
    assert pruner.t == 12 and 0.79 < met["sparsity_all"] <= 0.8
    assert met["overhead_window"] > 0 and met["overhead_run"] > 0
    model.eval()
    with torch.no_grad():
        correct = 0
        for b in DataLoader(test, batch_size=5, collate_fn=collate_trim):
            y = b.pop("labels")
            correct += int((model(**b).logits.argmax(-1) == y).sum())
    assert met["accuracy"] == correct / len(test) == _accuracy(model, test)


def test_resume_runs_only_what_the_partial_file_lacks(tmp_path, monkeypatch) -> None:
    import seven_prune.bench as bench
    from seven_prune.data import synthetic_sentiment

    ran = []

    def fake_train(model, pruner, train, test, cfg, seed, steps=None, lr=None):
        ran.append((cfg.task, seed, "dense" if pruner is None else type(pruner).__name__))
        return {"accuracy": 0.5 + 0.01 * seed, "overhead_run": 0.0}

    def fake_data():
        return synthetic_sentiment(32, seed=0), synthetic_sentiment(16, seed=1)

    monkeypatch.setattr(bench, "train_and_evaluate", fake_train)
    monkeypatch.setattr("seven_prune.data.digits_datasets", fake_data)
    monkeypatch.setattr(bench, "_vit_pretrained", lambda cfg, tr, te: lambda s: tiny_bert(seed=s))
    cfg = replace(vision_config(True, 2), methods=("dense", "magnitude"))
    monkeypatch.setattr(bench, "vision_config", lambda quick, seeds: cfg)
    partial = report.Results("seven-prune", "seven-prune bench --quick --seeds 2 --tasks vision")
    partial.config = {"seconds": 120.0}
    partial.add("dense", 0, {"accuracy": 0.9}, task="digits_vit", sparsity=0.0)
    partial.add("magnitude", 0, {"accuracy": 0.8}, task="digits_vit", sparsity=0.8)
    partial.add("dense", 1, {"accuracy": 0.9}, task="digits_vit", sparsity=0.0)
    partial.save(tmp_path / "seven-prune.partial.json")
    res = bench.run_bench(True, tmp_path, 2, ("vision",), resume=True, log=lambda m: None)
    assert ran == [("digits_vit", 1, "MagnitudePruner")]
    assert len(res.records) == 4
    assert not (tmp_path / "seven-prune.partial.json").exists()
    assert "Total benchmark time: 2." in (tmp_path / "seven-prune.md").read_text()
    partial.command = "seven-prune bench"
    partial.save(tmp_path / "seven-prune.partial.json")
    with pytest.raises(ValueError, match="resume: .* was written by"):
        bench.run_bench(True, tmp_path, 2, ("vision",), resume=True, log=lambda m: None)


def test_grid_table_pivots_sparsities_and_pairs_seven_with_each_method() -> None:
    res = report.Results("seven-prune", "seven-prune bench")
    for seed in range(3):
        res.add("dense", seed, {"accuracy": 0.8}, task="t", sparsity=0.0)
        for sp in (0.5, 0.9):
            res.add("SEVEN_dyn", seed, {"accuracy": 0.78 - sp / 10}, task="t", sparsity=sp)
            res.add(
                "magnitude", seed, {"accuracy": 0.70 - sp / 10 + 0.01 * seed}, task="t", sparsity=sp
            )
    text = grid_table(res, "t")
    assert "| method | 0.5 | 0.9 |" in text
    assert "| dense | 80.00 ± 0.00 | 80.00 ± 0.00 |" in text
    assert "| SEVEN_dyn | 73.00 ± 0.00 | 69.00 ± 0.00 |" in text
    # SEVEN leads magnitude by 8, 7, 6 points over the three seeds: mean +7
    assert "| magnitude | +7.00 [" in text
    assert grid_table(res, "other task") == ""


def _tiny_text_task(monkeypatch) -> None:
    """The epoch grid on 32 / 16 synthetic sentences and a tiny BERT instead of MiniLM."""
    import seven_prune.bench as bench
    from seven_prune.data import synthetic_sentiment

    monkeypatch.setattr(
        bench,
        "_text_data",
        lambda cfg: (synthetic_sentiment(32, seed=0), synthetic_sentiment(16, seed=1)),
    )
    monkeypatch.setattr(
        "seven_prune.models.load_minilm_classifier", lambda seed: tiny_bert(seed=seed)
    )


def test_epoch_grid_runs_in_chunks_and_resumes_to_the_full_plan(tmp_path, monkeypatch) -> None:
    """run_epoch_bench: a chunk stops at its time limit, labels its report PARTIAL, resumes."""
    import seven_prune.bench as bench

    ran = []
    clock = [0.0]

    def fake_train(model, pruner, train, test, cfg, seed, steps=None, lr=None):
        ran.append((seed, "dense" if pruner is None else type(pruner).__name__))
        clock[0] += 60.0  # every run takes one (fake) minute
        return {"accuracy": 0.8 - 0.01 * len(ran), "overhead_run": 0.01}

    monkeypatch.setattr(bench, "train_and_evaluate", fake_train)
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    _tiny_text_task(monkeypatch)
    plan = (("SEVEN_dyn", 0.8), ("dense", 0.0), ("magnitude (GMP)", 0.8))
    monkeypatch.setattr(bench, "EPOCH_PLAN", plan)
    orig = bench.epoch_config
    monkeypatch.setattr(
        bench,
        "epoch_config",
        lambda seeds, max_len=32, split="test": replace(orig(seeds, max_len, split), plan=plan),
    )
    bench.run_epoch_bench(tmp_path, seeds=2, max_minutes=2.5, log=lambda m: None)
    assert ran == [(0, "SevenPruner"), (0, "dense")]  # a third minute would pass 2.5
    md = (tmp_path / "seven-prune-epoch.md").read_text()
    assert "PARTIAL: 2 of 6 runs" in md and "--budget epoch" in md
    assert (tmp_path / "seven-prune-epoch.partial.json").is_file()
    res = bench.run_epoch_bench(tmp_path, seeds=2, resume=True, log=lambda m: None)
    assert ran[2:] == [
        (0, "GradualMagnitudePruner"),
        (1, "SevenPruner"),
        (1, "dense"),
        (1, "GradualMagnitudePruner"),
    ]
    assert len(res.records) == 6
    assert "All 6 runs recorded" in (tmp_path / "seven-prune-epoch.md").read_text()
    assert not (tmp_path / "seven-prune-epoch.partial.json").exists()


def test_lr_schedule_warms_up_then_decays_linearly() -> None:
    """_lr_schedule: linear warm-up over cfg.warmup of the steps, then linear decay to 0."""
    import torch
    from seven_prune.bench import _lr_schedule, epoch_config

    cfg = replace(epoch_config(1), warmup=0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = _lr_schedule(opt, cfg, 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5) and lrs[-1] == pytest.approx(1 / 90)
    assert _lr_schedule(opt, text_config(False, 1), 100) is None  # the short grid: constant


def test_probe_timing_takes_turns_and_reports_medians() -> None:
    """The overhead probes' harness: every run steps in turn, warm-up rounds untimed, medians."""
    import torch
    from seven_prune.bench import _forever, _loader, _overhead, _round_robin, build_pruner
    from seven_prune.data import synthetic_sentiment

    data = synthetic_sentiment(64, seed=0)
    from seven_prune.bench import BenchConfig

    cfg = BenchConfig("t", (), (0.5,), 1, 8, 8, 1e-3, start=0, window=100, delta_t=3, pre_batches=1)
    runs = []
    for method in ("plain", "SEVEN_dyn"):
        model = tiny_bert(hidden_size=32, intermediate_size=64, seed=0)
        pr = None if method == "plain" else build_pruner(method, model, 0.5, cfg, 0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        batches = _forever(_loader(data, 8, 0))
        runs.append((method, model, pr, opt, batches, {"step": [], "update": [], "cut": []}))
    _round_robin(runs, 8, cut_every=3)
    for *_, times in runs:
        assert len(times["step"]) == 6  # 8 rounds less 2 warm-up
        assert (len(times["cut"]), len(times["update"])) == (2, 4)  # cut rounds: 3, 6
    assert runs[1][2].t == 8 and runs[1][2].mask.sparsity > 0  # the pruner stepped every round
    times = {"step": [1.0, 3.0, 2.0], "update": [0.1, 0.3, 0.2], "cut": [0.5, 0.7]}
    m = _overhead(times, delta_t=10)
    assert m["step_seconds"] == 2.0 and m["update_seconds"] == pytest.approx(0.2)
    assert m["cut_seconds"] == pytest.approx(0.4)  # median cut 0.6 less the update
    assert m["overhead"] == pytest.approx((0.2 + 0.04) / 2.0) and "plain_step_seconds" not in m
    m = _overhead(times, delta_t=10, reference=4.0)
    assert m["overhead_cut_every_step"] == pytest.approx(0.6 / 4.0)
    assert m["plain_step_seconds"] == 4.0


def test_overhead_report_checks_the_goal_and_states_the_load(tmp_path) -> None:
    """write_overhead_outputs: one row per (batch, method) with the CIs, the <= 5% goal judged per
    row on the estimate and the CI's place against it, with and without the gradient hook, and
    the load average recorded beside each batch's timing."""
    from seven_prune.bench import write_overhead_outputs

    res = report.Results(
        "seven-prune", "seven-prune bench --budget overhead", {"delta_t": 10, "warmup": 4}
    )
    res.add("plain", 0, {"step_seconds": 0.3, "load_before": 3.9, "load_after": 3.6},
            task="overhead", batch="16x32")  # fmt: skip
    rows = (
        ("SEVEN_dyn", 0.020, 0.05, (0.08, 0.07, 0.09), (0.09, 0.08, 0.10)),
        ("SEVEN_dyn (fused)", 0.008, 0.04, (0.04, 0.035, 0.045), (0.048, 0.041, 0.052)),
    )
    for method, update, cut, (ov, lo, hi), (tot, tlo, thi) in rows:
        metrics = {
            "plain_step_seconds": 0.3,
            "update_seconds": update,
            "cut_seconds": cut,
            "overhead": ov,
            "overhead_lo": lo,
            "overhead_hi": hi,
            "overhead_with_hooks": tot,
            "overhead_with_hooks_lo": tlo,
            "overhead_with_hooks_hi": thi,
            "overhead_cut_every_step": (update + cut) / 0.3,
            "overhead_median": ov - 0.001,
            "timed_steps": 100.0,
            "cut_rounds": 10.0,
            "final_sparsity": 0.79,
        }
        res.add(method, 0, metrics, task="overhead", batch="16x32")
    path = write_overhead_outputs(res, tmp_path, 60.0)
    text = path.read_text()
    assert (
        "| 16x32 | SEVEN_dyn | 0.300 | 20.0 | 50.0 | 8.00% [7.00, 9.00] | 9.00% [8.00, 10.00] "
        "| 23.3% | 7.90% |" in text
    )
    assert (
        "- SEVEN_dyn at 16x32: 8.00% [7.00, 9.00] of a plain step (goal <= 5%) — **missed** (the "
        "whole CI above the goal); with the gradient hook 9.00% [8.00, 10.00] — **missed**" in text
    )
    assert (
        "- SEVEN_dyn (fused) at 16x32: 4.00% [3.50, 4.50] of a plain step (goal <= 5%) — **met** "
        "(the whole CI below the goal); with the gradient hook 4.80% [4.10, 5.20] — **met** (the "
        "CI straddles the goal)" in text
    )
    assert "16x32: 3.90 before, 3.60 after" in text and "means over 100 timed rounds" in text
    assert "(10 of them with a cut) after 4 untimed ones" in text and "reached: 0.79" in text


def test_overhead_rounds_rotate_and_pair_with_the_pruners_own_cuts(monkeypatch) -> None:
    """_round_robin(rotate=True, cut_every=None): every run takes every position in the round
    equally often (no run always follows the same one), the per-round lists pair by round, and a
    round counts as a cut round exactly when the pruner cut its mask (its own delta_t cadence, on
    its cubic schedule: the mask shrinks at each)."""
    import torch
    from seven_prune import bench
    from seven_prune.bench import BenchConfig, _forever, _loader, _round_robin, build_pruner
    from seven_prune.data import synthetic_sentiment

    data = synthetic_sentiment(64, seed=0)
    cfg = BenchConfig("t", (), (0.5,), 1, 8, 8, 1e-3, start=0, window=14, delta_t=3, pre_batches=1)
    order: list[str] = []
    timed = bench._timed_step

    def spy(model, batch, opt, pr):
        order.append(model.tag)
        return timed(model, batch, opt, pr)

    monkeypatch.setattr(bench, "_timed_step", spy)
    runs = []
    for method in ("plain", "SEVEN_dyn", "PLATON"):
        model = tiny_bert(hidden_size=32, intermediate_size=64, seed=0)
        model.tag = method
        pr = None if method == "plain" else build_pruner(method, model, 0.5, cfg, 0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        runs.append((method, model, pr, opt, _forever(_loader(data, 8, 0)), {"step": [], "update": [], "cut": []}))  # fmt: skip
    sparsity: list[float] = []
    _round_robin(runs, 12, cut_every=None, warmup=3, rotate=True)
    rounds = [order[i : i + 3] for i in range(0, len(order), 3)]
    assert rounds[0] == ["plain", "SEVEN_dyn", "PLATON"]
    assert rounds[1] == ["SEVEN_dyn", "PLATON", "plain"] and rounds[2][0] == "PLATON"
    for pos in range(3):  # over the 12 rounds each run is first, second and third 4 times
        assert sorted(r[pos] for r in rounds).count("plain") == 4
    for method, _, pr, _, _, times in runs:
        assert len(times["step"]) == len(times["prune"]) == len(times["is_cut"]) == 9
        if pr is None:
            assert times["prune"] == [0.0] * 9 and not any(times["is_cut"])
            continue
        # updates k = 3..11 timed; cuts after k = 5, 8, 11 (every 3rd update)
        assert times["is_cut"] == [k % 3 == 2 for k in range(3, 12)], method
        assert len(times["cut"]) == 3 and len(times["update"]) == 6
        sparsity.append(pr.achieved_sparsity)
    assert all(0.3 < s <= 0.5 for s in sparsity)


def test_overhead_paired_amortises_the_cut_and_adds_the_hook() -> None:
    """_overhead_paired: (update + cut / delta_t) / plain from the round means, the pruned step's
    extra time added in the hook figure, CIs that hold the estimate (degenerate when every round
    of a kind took the same time), and errors on unpaired lists or no cut round."""
    import numpy as np
    from seven_prune.bench import _overhead_paired

    plain = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    times = {
        "step": [1.1] * 6,
        "prune": [0.1, 0.1, 0.5, 0.1, 0.1, 0.5],
        "is_cut": [False, False, True, False, False, True],
    }
    m = _overhead_paired(plain, times, delta_t=10)
    assert m["update_seconds"] == pytest.approx(0.1) and m["cut_seconds"] == pytest.approx(0.4)
    assert m["overhead"] == pytest.approx(0.14) and m["overhead_cut_every_step"] == pytest.approx(
        0.5
    )
    assert m["overhead_with_hooks"] == pytest.approx(0.24) and m["hook_seconds"] == pytest.approx(
        0.1
    )
    assert m["overhead_lo"] == pytest.approx(0.14) and m["overhead_hi"] == pytest.approx(0.14)
    assert m["cut_rounds"] == 2 and m["timed_steps"] == 6
    # a load that slows whole rounds alike leaves the ratio; the CI holds it
    rng = np.random.default_rng(0)
    load = 1.0 + rng.random(60)
    is_cut = [i % 10 == 9 for i in range(60)]
    noisy = {
        "step": list(0.3 * load),
        "prune": [0.3 * li * (0.05 + (0.1 if c else 0.0)) for li, c in zip(load, is_cut)],
        "is_cut": is_cut,
    }
    m = _overhead_paired(list(0.3 * load), noisy, delta_t=10)
    assert m["overhead_lo"] <= m["overhead"] <= m["overhead_hi"]
    assert 0.055 < m["overhead"] < 0.065 and m["overhead_with_hooks"] == pytest.approx(
        m["overhead"]
    )
    with pytest.raises(ValueError, match="pair by round"):
        _overhead_paired(plain[:5], times, delta_t=10)
    with pytest.raises(ValueError, match="1 timed cut round"):
        _overhead_paired(plain, {**times, "is_cut": [False] * 6}, delta_t=10)


def test_overhead_compare_refuses_too_few_rounds() -> None:
    """overhead_compare: fewer rounds than two cut intervals, or no methods, are refused before
    any model is loaded."""
    from seven_prune.bench import overhead_compare

    with pytest.raises(ValueError, match="rounds must be at least 2 \\* delta_t = 20"):
        overhead_compare(rounds=19)
    with pytest.raises(ValueError, match="methods"):
        overhead_compare(methods=[])
    with pytest.raises(ValueError, match="warmup"):
        overhead_compare(warmup=-1)


def test_learned_movement_labels_build_the_authors_form() -> None:
    """build_pruner: 'movement (learned scores[, score lr X])' is SanhMovementPruner on the grid's
    window and cut interval, its score lr following the weights' warm-up/decay factor."""
    from seven_prune import SanhMovementPruner
    from seven_prune.bench import build_pruner, epoch_config, lr_factor

    cfg = epoch_config(None)
    p = build_pruner("movement (learned scores)", tiny_bert(), 0.8, cfg, 0)
    assert isinstance(p, SanhMovementPruner) and p.score_lr == 1e-2 and p.scope == "layer"
    assert (p.start, p.window, p.delta_t) == (cfg.start, cfg.window, cfg.delta_t)
    factor = lr_factor(cfg, cfg.steps)
    assert [p.score_lr_schedule(t) for t in (0, 30, 400)] == [factor(t) for t in (0, 30, 400)]
    p.remove()
    q = build_pruner("movement (learned scores, score lr 0.03)", tiny_bert(), 0.8, cfg, 0)
    assert q.score_lr == 0.03
    q.remove()
    with pytest.raises(ValueError, match="score lr must be a number"):
        build_pruner("movement (learned scores, score lr 1e-2e)", tiny_bert(), 0.8, cfg, 0)


def test_epoch_runs_of_chosen_methods() -> None:
    """epoch_runs: the chosen labels' runs of the grid or of the extra plan, in order."""
    from seven_prune.bench import EPOCH_EXTRA_PLAN, epoch_command, epoch_runs

    assert epoch_runs(["movement (learned scores)"]) == EPOCH_EXTRA_PLAN
    assert epoch_runs(["PLATON", "movement (learned scores, score lr 0.1)"]) == (
        ("PLATON", 0.8),
        ("PLATON", 0.9),
        ("movement (learned scores, score lr 0.1)", 0.8),
    )
    with pytest.raises(ValueError, match="'OBD' is not a one-epoch label"):
        epoch_runs(["OBD"])
    with pytest.raises(ValueError, match="non-empty list"):
        epoch_runs("PLATON")
    assert epoch_command() == "seven-prune bench --budget epoch"  # the grid's cache key
    assert epoch_command(methods=["movement (learned scores)"]) == (
        "seven-prune bench --budget epoch --methods 'movement (learned scores)'"
    )


def test_epoch_bench_of_chosen_methods_has_its_own_cache_and_pairs_with_a_reference(
    tmp_path, monkeypatch
) -> None:
    """run_epoch_bench(methods=..., reference=...): only those runs, under their own command and
    cache; the report pairs them by seed with the reference file's runs."""
    import seven_prune.bench as bench
    from maskloop import report

    ran = []

    def fake_train(model, pruner, train, test, cfg, seed, steps=None, lr=None):
        ran.append((seed, type(pruner).__name__, pruner.score_lr))
        return {"accuracy": 0.50 + 0.01 * seed, "overhead_run": 0.01}

    monkeypatch.setattr(bench, "train_and_evaluate", fake_train)
    _tiny_text_task(monkeypatch)
    ref = report.Results("seven-prune", "seven-prune bench --budget epoch", {})
    for seed, acc in ((0, 0.75), (1, 0.80), (2, 0.70)):
        ref.add(
            "magnitude (GMP)", seed, {"accuracy": acc}, task="rotten_tomatoes_epoch", sparsity=0.8
        )
    ref.add("dense", 0, {"accuracy": 0.9}, task="rotten_tomatoes_epoch", sparsity=0.0)
    ref.add("PLATON", 0, {"accuracy": 0.8}, task="rotten_tomatoes_epoch", sparsity=0.9)
    ref.save(tmp_path / "grid.json")
    out = tmp_path / "movement"
    labels = ["movement (learned scores)", "movement (learned scores, score lr 0.1)"]
    res = bench.run_epoch_bench(
        out, seeds=2, methods=labels, reference=tmp_path / "grid.json", log=lambda m: None
    )
    assert ran == [
        (0, "SanhMovementPruner", 0.01),
        (0, "SanhMovementPruner", 0.1),
        (1, "SanhMovementPruner", 0.01),
        (1, "SanhMovementPruner", 0.1),
    ]
    assert res.command == bench.epoch_command(2, methods=labels)
    md = (out / "seven-prune-epoch.md").read_text()
    assert "All 4 runs recorded" in md and "--methods 'movement (learned scores)'" in md
    row = next(
        r for r in md.splitlines() if r.startswith("| movement (learned scores) @ 0.8 | magnitude")
    )
    assert "| 2 | -27.00 [-29.00, -25.00]" in row and "0: 50.00 vs 75.00, 1: 51.00 vs 80.00" in row
    assert "dense @ 0" in md and "PLATON @ 0.9" not in md  # paired at its own sparsity or dense
    saved = report.Results.load(out / "seven-prune-epoch.json")
    assert {r.method for r in saved.records} == set(labels)  # the reference is not copied in
    with pytest.raises(ValueError, match="reference: no results file"):
        bench.run_epoch_bench(out, seeds=1, methods=labels, reference=tmp_path / "none.json")


def test_text_data_validation_split_is_held_out_of_train_and_disjoint_from_test(
    monkeypatch,
) -> None:
    """_text_data(split="validation"): the evaluation set is a fixed part of the test split's
    training sentences (never a test sentence), trained on the rest; split="test" is unchanged."""
    import seven_prune.bench as bench
    import torch
    from seven_prune.bench import epoch_config
    from seven_prune.data import TokenizedDataset

    n = 300
    monkeypatch.setattr(
        "seven_prune.data.load_movie_reviews", lambda source: ([str(i) for i in range(n)], [0] * n)
    )
    monkeypatch.setattr("seven_prune.models.load_minilm_tokenizer", lambda: None)

    def ids_only(texts, labels, tokenizer, max_len):  # each row carries its sentence's index
        ids = torch.tensor([[int(t)] for t in texts])
        return TokenizedDataset({"input_ids": ids, "labels": torch.tensor(labels)})

    monkeypatch.setattr("seven_prune.data.tokenize", ids_only)

    def rows(ds):
        return ds.tensors["input_ids"][:, 0].tolist()

    sizes = {"n_test": 40, "n_validation": 30}
    tr, te = (rows(d) for d in bench._text_data(replace(epoch_config(None), **sizes)))
    vcfg = replace(epoch_config(None, split="validation"), **sizes)
    fit, val = (rows(d) for d in bench._text_data(vcfg))
    assert len(te) == 40 and len(val) == 30 and len(fit) == n - 70
    assert not set(val) & set(te) and not set(fit) & set(te) and not set(fit) & set(val)
    assert sorted(fit + val) == sorted(tr)
    assert [rows(d) for d in bench._text_data(vcfg)] == [fit, val]  # the same split every run
    assert vcfg.task == "rotten_tomatoes_epoch_validation" != epoch_config(None).task
    # the schedule is the test runs' own: a setting chosen on validation transfers unchanged
    assert replace(vcfg, task="t", split="test") == replace(epoch_config(None), task="t", **sizes)


def test_epoch_bench_validation_split_has_its_own_task_command_and_cache(
    tmp_path, monkeypatch
) -> None:
    """run_epoch_bench(split="validation"): records under the validation task, `--split
    validation` in the command, a report that says validation and states no goals; a cache of
    the test split is never resumed into it, nor the other way round."""
    import seven_prune.bench as bench

    def fake_train(model, pruner, train, test, cfg, seed, steps=None, lr=None):
        return {"accuracy": 0.6 + 0.01 * seed, "overhead_run": 0.01}

    monkeypatch.setattr(bench, "train_and_evaluate", fake_train)
    _tiny_text_task(monkeypatch)
    labels = ["movement (learned scores)", "movement (learned scores, warm-up 161)"]
    out = tmp_path / "val"
    res = bench.run_epoch_bench(out, seeds=2, methods=labels, split="validation", log=print)
    assert {r.setting["task"] for r in res.records} == {"rotten_tomatoes_epoch_validation"}
    assert len(res.records) == 4
    assert res.command.startswith("seven-prune bench --budget epoch --split validation --seeds 2")
    md = (out / "seven-prune-epoch.md").read_text()
    assert "Validation accuracy (%) by sparsity" in md and "**Validation** accuracy on 800" in md
    assert "Test accuracy" not in md and "Goals (issue 17)" not in md
    assert "--split validation" in md  # the command beside the table
    assert "484 steps" in md and "1.12 passes over the sentences trained on here" in md
    # a test-split cache in the same folder is refused by a validation resume, and vice versa
    test_partial = report.Results("seven-prune", bench.epoch_command(2, methods=labels))
    test_partial.save(out / "seven-prune-epoch.partial.json")
    with pytest.raises(ValueError, match="resume: .* was written by"):
        bench.run_epoch_bench(
            out, seeds=2, methods=labels, split="validation", resume=True, log=print
        )
    val_partial = report.Results("seven-prune", res.command)
    val_partial.save(out / "seven-prune-epoch.partial.json")
    with pytest.raises(ValueError, match="resume: .* was written by"):
        bench.run_epoch_bench(out, seeds=2, methods=labels, resume=True, log=print)


def test_learned_movement_warm_up_label() -> None:
    """'movement (learned scores, warm-up N)': the scores learn N steps before the first cut and
    the window ends where the grid's ends; a warm-up past the window's end is refused."""
    from seven_prune.bench import build_pruner, epoch_config

    cfg = epoch_config(None)
    p = build_pruner("movement (learned scores, score lr 1, warm-up 161)", tiny_bert(), 0.8, cfg, 0)
    assert (p.start, p.start + p.window, p.score_lr) == (161, cfg.start + cfg.window, 1.0)
    p.remove()
    with pytest.raises(ValueError, match=r"the warm-up must be in \[0, 322\) steps"):
        build_pruner("movement (learned scores, warm-up 400)", tiny_bert(), 0.8, cfg, 0)


def test_labelled_variants_parse_into_their_builders_arguments() -> None:
    """parse_variant: '<base> (<option>, ...)' gives the base label and its builder's keyword
    arguments; a label not written as a variant gives None. build_pruner builds a variant on the
    grid's schedule, and epoch_runs runs it at its base label's sparsities (or `sparsities`)."""
    from seven_prune import PlatonPruner, SevenPruner
    from seven_prune.bench import (
        build_pruner,
        epoch_command,
        epoch_config,
        epoch_runs,
        parse_variant,
    )

    assert parse_variant("SEVEN_dyn (signed moments)") == ("SEVEN_dyn", {"moments": "signed"})
    assert parse_variant("SEVEN_dyn (signed moments, alpha 0.9/0.99)") == (
        "SEVEN_dyn",
        {"moments": "signed", "alpha1": 0.9, "alpha2": 0.99},
    )
    assert parse_variant("PLATON (beta 0.8/0.9)") == ("PLATON", {"beta1": 0.8, "beta2": 0.9})
    assert parse_variant("movement (learned scores, score lr 1, warm-up 161)") == (
        "movement (learned scores)",
        {"score_lr": 1.0, "warm_up": 161},
    )
    assert parse_variant("PLATON") == ("PLATON", {})
    for label in ("dense", "SEVEN_dyn 2:4", "Taylor (per step)", "magnitude (GMP, per layer)"):
        assert parse_variant(label) is None

    cfg = epoch_config(None)
    seven = build_pruner("SEVEN_dyn (signed moments, alpha 0.9/0.99)", tiny_bert(), 0.8, cfg, 0)
    assert isinstance(seven, SevenPruner) and seven.mode == "dyn"
    assert (seven.moments, seven.alpha1, seven.alpha2) == ("signed", 0.9, 0.99)
    schedule = (cfg.start, cfg.window, cfg.delta_t, cfg.min_density)
    assert (seven.start, seven.window, seven.delta_t, seven.min_density) == schedule
    seven.remove()
    platon = build_pruner("PLATON (beta 0.8/0.9)", tiny_bert(), 0.8, cfg, 0)
    assert isinstance(platon, PlatonPruner) and (platon.beta1, platon.beta2) == (0.8, 0.9)
    assert (platon.start, platon.window, platon.delta_t, platon.min_density) == schedule
    platon.remove()
    default = build_pruner("PLATON", tiny_bert(), 0.8, cfg, 0)
    assert (default.beta1, default.beta2) == (0.85, 0.95)
    default.remove()

    assert epoch_runs(["SEVEN_dyn (signed moments)", "PLATON (beta 0.8/0.9)"]) == (
        ("SEVEN_dyn (signed moments)", 0.8),
        ("SEVEN_dyn (signed moments)", 0.9),
        ("PLATON (beta 0.8/0.9)", 0.8),
        ("PLATON (beta 0.8/0.9)", 0.9),
    )
    assert epoch_runs(["dense", "SEVEN_dyn", "PLATON (beta 0.8/0.9)"], sparsities=[0.8]) == (
        ("dense", 0.0),
        ("SEVEN_dyn", 0.8),
        ("PLATON (beta 0.8/0.9)", 0.8),
    )
    assert epoch_command(
        methods=["PLATON (beta 0.8/0.9)"], split="validation", sparsities=[0.8]
    ) == (
        "seven-prune bench --budget epoch --split validation --methods 'PLATON (beta 0.8/0.9)'"
        " --sparsities 0.8"
    )


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("PLATON (alpha 0.8/0.9)", r"'alpha 0.8/0.9' is not an option of 'PLATON'"),
        ("SEVEN_dyn (alpha 0.9/0.99, signed moments)", "each at most once and in this order"),
        ("SEVEN_dyn (signed moments, signed moments)", "'signed moments' is not an option"),
        ("SEVEN_dyn (alpha 0.9)", "'alpha 0.9' is not an option of 'SEVEN_dyn'"),
        ("PLATON ()", "'' is not an option of 'PLATON'"),
        ("SEVEN_dyn (alpha 0.9/1.5)", r"alpha2 must be in \[0, 1\), got 1.5"),
        ("PLATON (beta 0.8/x)", "the beta2 must be a number, got 'x'"),
        ("movement (learned scores, score lr fast)", "the score lr must be a number"),
    ],
)
def test_a_badly_written_variant_is_refused_naming_the_label(label, message) -> None:
    """A label written as a variant of SEVEN_dyn / PLATON / learned movement with an unknown,
    repeated, reordered, malformed or out-of-range option: ValueError naming the label, from the
    parser and from the bench's two entry points (before any run starts)."""
    from seven_prune.bench import build_pruner, epoch_config, epoch_runs, parse_variant

    for call in (
        lambda: parse_variant(label),
        lambda: epoch_runs([label]),
        lambda: build_pruner(label, tiny_bert(), 0.8, epoch_config(None), 0),
    ):
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert repr(label) in str(err.value)


def test_epoch_runs_sparsities_are_checked() -> None:
    """epoch_runs(sparsities=...): a label with no run there, or bad sparsities, is refused."""
    from seven_prune.bench import epoch_runs

    with pytest.raises(ValueError, match=r"'PLATON' has no run at sparsities \[0.5\]"):
        epoch_runs(["PLATON"], sparsities=[0.5])
    with pytest.raises(ValueError, match="sparsities must be a non-empty list"):
        epoch_runs(["PLATON"], sparsities=[])
    with pytest.raises(ValueError, match="sparsities"):
        epoch_runs(["PLATON"], sparsities=[1.5])


def test_validation_sweep_of_variants_runs_at_the_chosen_sparsity_and_pairs_each_with_its_base(
    tmp_path, monkeypatch
) -> None:
    """run_epoch_bench(methods=<variants>, sparsities=[0.8], split="validation"): each variant's
    pruner gets its settings, only the 0.8 runs are made (seed by seed), and the report pairs each
    variant with its base label by seed (the figure the tuning rule reads)."""
    import seven_prune.bench as bench

    ran = []

    def fake_train(model, pruner, train, test, cfg, seed, steps=None, lr=None):
        setting = getattr(pruner, "moments", None) or getattr(pruner, "beta1", None)
        ran.append((seed, type(pruner).__name__, setting, pruner.sparsity))
        bonus = {"signed": 0.02, 0.8: -0.01}.get(setting, 0.0)
        return {"accuracy": 0.7 + 0.01 * seed + bonus, "overhead_run": 0.01}

    monkeypatch.setattr(bench, "train_and_evaluate", fake_train)
    _tiny_text_task(monkeypatch)
    labels = ["SEVEN_dyn", "SEVEN_dyn (signed moments)", "PLATON", "PLATON (beta 0.8/0.9)"]
    out = tmp_path / "tuning"
    res = bench.run_epoch_bench(
        out, seeds=2, methods=labels, split="validation", sparsities=[0.8], log=lambda m: None
    )
    assert ran == [
        (seed, kind, setting, 0.8)
        for seed in (0, 1)
        for kind, setting in (
            ("SevenPruner", "abs"),
            ("SevenPruner", "signed"),
            ("PlatonPruner", 0.85),
            ("PlatonPruner", 0.8),
        )
    ]
    assert res.command.endswith("--sparsities 0.8")
    md = (out / "seven-prune-epoch.md").read_text()
    assert "| SEVEN_dyn (signed moments) @ 0.8 | SEVEN_dyn | 0, 1 | +2.00 [+2.00, +2.00]" in md
    assert "| PLATON (beta 0.8/0.9) @ 0.8 | PLATON | 0, 1 | -1.00 [-1.00, -1.00]" in md
    # a grid label that only looks like a variant is not paired (and does not raise)
    res.add("SEVEN_dyn (plain global)", 0, {"accuracy": 0.5}, task=res.records[0].setting["task"],
            sparsity=0.8)  # fmt: skip
    assert "plain global" not in bench.variant_section(res, res.records[0].setting["task"])
