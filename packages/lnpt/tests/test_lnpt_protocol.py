"""The validation / test protocol check: what the two protocols share, the per-seed report."""

import pytest
import torch
from lnpt.bench import BenchConfig, train_teacher
from lnpt.data import load_digits_split
from lnpt.models import MLP
from lnpt.protocol import ProtocolConfig, _train, protocol_sections
from maskloop import report, seed_everything


def test_both_protocols_share_the_teacher():
    """The ablation's validation split moves part of the *student's* half only, so the teacher it
    trains is the benchmark's, weight for weight (a protocol difference there would explain a
    validation / test disagreement)."""
    torch.set_num_threads(1)
    cfg = BenchConfig(teacher_epochs={"mlp": 1})
    full = load_digits_split(3)
    val = full.validation(0.25, 3)
    assert torch.equal(val.teacher_x, full.teacher_x)
    assert val.student_x.shape[0] + val.test_x.shape[0] == full.student_x.shape[0]
    a = train_teacher("mlp", full, cfg, 3)[-1]
    b = train_teacher("mlp", val, cfg, 3)[-1]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_a_budget_read_inside_a_longer_run_is_the_shorter_run():
    """The copy after e epochs of a longer run equals an e-epoch run (no scheduler), so one run per
    seed reads every epoch budget and its benchmark-budget row is the benchmark's student."""
    torch.set_num_threads(1)
    cfg = BenchConfig()
    data = load_digits_split(0)
    seed_everything(0)
    init = MLP(hidden=(16,))
    short = _train("dense+supervised", init, None, data, None, 1, (1,), cfg, 0, 64)
    both = _train("dense+supervised", init, None, data, None, 2, (1, 2), cfg, 0, 64)
    assert len(both) == 2
    for p, q in zip(short[0].parameters(), both[0].parameters()):
        assert torch.equal(p, q)
    assert not all(torch.equal(p, q) for p, q in zip(both[0].parameters(), both[1].parameters()))


def _records(lnpt_vals, snip_vals):
    res = report.Results("lnpt", "x")
    cells = (
        ("validation", "accuracy", 0),
        ("validation", "test_accuracy", 1),
        ("test", "accuracy", 2),
    )
    for s in range(len(lnpt_vals)):
        res.add("teacher", s, {"test_accuracy": 0.9}, protocol="both")
        for arm, vals in (("lnpt+label-free", lnpt_vals), ("snip+supervised", snip_vals)):
            for protocol in ("validation", "test"):
                metrics = {metric: vals[s][i] for p, metric, i in cells if p == protocol}
                metrics["train_accuracy"] = 1.0
                res.add(arm, s, metrics, protocol=protocol, epochs=30, model="cnn", sparsity=0.95)
    return res


def test_the_report_pairs_each_cell_by_seed():
    """Per seed and cell, Δ = LNPT − SNIP; the mean row is the paired mean of each cell, so a sign
    flip between validation and test shows as it is."""
    lnpt_vals = [(0.80, 0.84, 0.85), (0.90, 0.88, 0.86)]
    snip_vals = [(0.70, 0.86, 0.88), (0.88, 0.90, 0.90)]
    text = "\n".join(protocol_sections(_records(lnpt_vals, snip_vals), ProtocolConfig()))
    seed0 = next(line for line in text.splitlines() if line.startswith("| 0 |"))
    cells = [c.strip() for c in seed0.split("|")[1:-1]]
    assert cells[2:5] == ["80.00", "70.00", "+10.00"]
    assert cells[5:8] == ["84.00", "86.00", "-2.00"]
    assert cells[8:11] == ["85.00", "88.00", "-3.00"]
    mean = next(line for line in text.splitlines() if line.startswith("| Δ mean"))
    assert "+6.00 [" in mean and "-2.00 [" in mean and "-3.50 [" in mean


def test_config_errors():
    with pytest.raises(ValueError, match="model"):
        ProtocolConfig(model="vgg").check()
    with pytest.raises(ValueError, match="arms"):
        ProtocolConfig(arms=("grasp+supervised",)).check()
    with pytest.raises(ValueError, match="budgets"):
        ProtocolConfig(budgets=(60, 90)).check()
    with pytest.raises(ValueError, match="budgets"):
        ProtocolConfig(budgets=(0, 30)).check()
    with pytest.raises(ValueError, match="seeds"):
        ProtocolConfig(seeds=0).check()


def test_goal_lines_leave_out_a_seed_whose_teacher_collapsed():
    """A chance-level teacher (seed 6 of the digits CNN: 10.28%) is not the mature teacher LNPT
    assumes: its label-free students collapse with it. The goal lines drop that seed and name it;
    with every teacher above the floor they are unchanged."""
    from lnpt.bench import collapsed_teachers, goal_lines

    res = report.Results("lnpt", "x")
    lnpt_acc, snip_acc = [0.90, 0.88, 0.10, 0.86], [0.89, 0.87, 0.45, 0.88]
    for s in range(4):
        teacher = 0.1028 if s == 2 else 0.95
        res.add("teacher (dense, other half)", s, {"accuracy": teacher}, model="cnn", sparsity=0.0)
        res.add("dense supervised", s, {"accuracy": 0.95}, model="cnn", sparsity=0.0)
        res.add("lnpt+label-free", s, {"accuracy": lnpt_acc[s]}, model="cnn", sparsity=0.95)
        res.add("snip+supervised", s, {"accuracy": snip_acc[s]}, model="cnn", sparsity=0.95)
    assert collapsed_teachers(res, "cnn") == {2: 0.1028}
    lines = goal_lines(res, "cnn")
    assert lines[0].startswith("- 95%: LNPT label-free minus SNIP supervised: +0.00 [")
    assert lines[1].startswith("- 95%: LNPT label-free minus dense supervised: -7.00 [")
    assert "seed 2 (10.28%)" in lines[-1]
    res.records = [r for r in res.records if r.seed != 2]
    assert collapsed_teachers(res, "cnn") == {}
    assert goal_lines(res, "cnn")[:2] == lines[:2]
    assert "left out" not in goal_lines(res, "cnn")[-1]


def test_goal_lines_give_no_verdict_on_a_partial_run():
    """A run stopped by --budget-s before every requested seed finished prints its CI but no
    met/missed (session 29: the 480-epoch 98% read printed 'met' on 4 of 10 seeds); once the
    requested seeds are all in, the verdict returns, and a bad seed count is a clear error."""
    from lnpt.bench import goal_lines

    res = report.Results("lnpt", "x")
    for s in range(4):
        res.add("teacher (dense, other half)", s, {"accuracy": 0.95}, model="cnn", sparsity=0.0)
        res.add("dense supervised", s, {"accuracy": 0.98}, model="cnn", sparsity=0.0)
        res.add("lnpt+label-free", s, {"accuracy": 0.95 + 0.01 * s}, model="cnn", sparsity=0.98)
        res.add("random+label-free", s, {"accuracy": 0.10}, model="cnn", sparsity=0.98)
    (line,) = goal_lines(res, "cnn", seeds=10)
    assert line.startswith("- 98%: LNPT label-free minus random label-free: +86.50 [")
    assert line.endswith("-> partial (4 of 10 seeds), no verdict")
    assert goal_lines(res, "cnn", seeds=4)[0].endswith("-> met")
    assert goal_lines(res, "cnn")[0].endswith("-> met")
    for bad in (0, -1, 2.0, True, "10"):
        with pytest.raises(ValueError, match="seeds"):
            goal_lines(res, "cnn", seeds=bad)
