"""The benchmark's report writer and goal checks on synthetic records (no model is trained)."""

import pytest
from maskloop import report
from seven_prune.bench import build_pruner, goals, text_config, vision_config, write_outputs
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
    assert cfg.seeds == 2 and cfg.sparsities == (0.8,)
    assert text_config(False, None).seeds == 3
    for label in cfg.methods[1:]:
        p = build_pruner(label, tiny_bert(), 0.5, cfg, 0)
        p.remove()
    with pytest.raises(ValueError, match="method must be one of"):
        build_pruner("OBD", tiny_bert(), 0.5, cfg, 0)
