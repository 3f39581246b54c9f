"""``scripts/paired_rule.py`` pairs over complete seeds only (issue 18, session 31).

Before session 31 a seed counted when BASE and METHOD had the *same* tasks, so a seed stopped
after 3 of 5 tasks in every row entered the five-task means and CIs; these tests fail on that.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from cdhm.bench import BenchConfig, _cache_key

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "paired_rule.py"


@pytest.fixture(scope="module")
def paired_rule():
    spec = importlib.util.spec_from_file_location("paired_rule", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(acc: float) -> dict:
    n = 10
    true = [0, 1] * (n // 2)
    return {"metrics": {"acc_target": acc}, "true": true, "pred": true}


def _cache(tmp_path: Path) -> Path:
    """Seed 204 with the five 0db tasks for both rows, seed 205 with 3 of them for both."""
    jobs = {}
    five = ["0->1", "1->2", "3->1", "3->2", "0->3"]
    for seed, tasks in ((204, five), (205, five[:3])):
        for task in tasks:
            # base 0.5; method 0.6 on seed 204, 0.9 on the partial seed 205
            jobs[f"{task}|{seed}"] = {"B": _run(0.5), "M": _run(0.6 if seed == 204 else 0.9)}
    path = tmp_path / "x_cache.json"
    path.write_text(json.dumps({_cache_key(BenchConfig(n_segments=4)): jobs}))
    return path


def test_partial_seed_is_not_paired(paired_rule, tmp_path, capsys):
    paired_rule.main([str(_cache(tmp_path)), "B", "M"])
    out = capsys.readouterr().out
    assert "partial seed 205 (not used)" in out
    line = [v for v in out.splitlines() if v.startswith("M ")][0]
    # seed 204 alone: +10 points, n = 1 (the old pairing gave n = 2 and a mean of +25)
    assert "+10.00 [+10.00, +10.00] (n=1)" in line
    assert "swaps 0 of 5" in line


def test_task_set_names_the_full_set(paired_rule, tmp_path, capsys):
    paired_rule.main([str(_cache(tmp_path)), "B", "M", "--task-set", "0db"])
    out = capsys.readouterr().out
    assert "partial seed 205" in out and "(n=1)" in out
    # "s18" (4 tasks, no A->D): seed 205 still lacks D->C
    paired_rule.main([str(_cache(tmp_path)), "B", "M", "--task-set", "s18"])
    out = capsys.readouterr().out
    assert "partial seed 205" in out and "swaps 0 of 4" in out
    # --tasks restricted to the three tasks both seeds have: both complete
    paired_rule.main([str(_cache(tmp_path)), "B", "M", "--tasks", "A->B,B->C,D->B"])
    out = capsys.readouterr().out
    assert "partial" not in out and "(n=2)" in out


def test_complete_seeds(paired_rule):
    rows = {
        "B": {1: {"x": 1.0, "y": 1.0}, 2: {"x": 1.0}, 3: {"x": 1.0, "y": 1.0}},
        "M": {1: {"x": 1.0, "y": 1.0}, 2: {"x": 1.0}, 3: {"x": 1.0}},
    }
    complete, partial = paired_rule.complete_seeds(rows)
    assert complete == [1]
    assert partial == {2: {"B": ["x"], "M": ["x"]}, 3: {"B": ["x", "y"], "M": ["x"]}}
    assert paired_rule.complete_seeds(rows, {"x"})[0] == [1, 2, 3]
    assert paired_rule.complete_seeds(rows, {"x", "y", "z"})[0] == []


def test_complete_seeds_bad_input(paired_rule, tmp_path):
    with pytest.raises(ValueError, match="rows"):
        paired_rule.complete_seeds({})
    with pytest.raises(ValueError, match="tasks"):
        paired_rule.complete_seeds({"B": {}})
    with pytest.raises(SystemExit, match="--task-set"):
        paired_rule.main([str(_cache(tmp_path)), "B", "M", "--task-set", "nope"])
    with pytest.raises(SystemExit, match="not both"):
        paired_rule.main([str(_cache(tmp_path)), "B", "M", "--task-set", "0db", "--tasks", "A->B"])
