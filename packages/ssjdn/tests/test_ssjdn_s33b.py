"""Issue 19, session 33b: rule ``docs/benchmarks/ssjdn_validation_s33b_rule.md`` (LSD's heads at
10x the training lr, ``lsd_head_lr``). The option was rejected by the rule and retired in session
34 with its tests (its code at commit 7b1d953, `ssjdn.retired`); its rows keep their cache keys,
so ``scripts/decide.py --rule s33b_head_lr`` still reads them, which these tests check."""

import json
import sys
from pathlib import Path

from ssjdn.bench import BenchSettings, cache_stem

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)

RUNG, FULL_NEW = "+LSD centered head lr 10", "BSD centered head lr 10"


def _cache(root: Path, runs: dict[str, list[float]], seeds: range) -> None:
    folder = root / "val" / BenchSettings.quick().key()
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in runs.items():
        for seed, v in zip(seeds, values):
            metrics = {"mR": v, "hard_mR": v / 2}
            (folder / f"{cache_stem(name, seed)}.json").write_text(json.dumps({"metrics": metrics}))


def _decide(root: Path, capsys) -> str:
    assert decide.main(["--rule", "s33b_head_lr", "--cache", str(root)]) == 0
    return capsys.readouterr().out


BASE = [14.0, 15.0, 16.0, 14.5, 15.5]


def test_rule_s33b_adopts_only_when_every_cell_passes(tmp_path, capsys) -> None:
    seeds = range(90, 95)
    up = [v + 1.0 + 0.1 * i for i, v in enumerate(BASE)]
    _cache(tmp_path, {"+bidirectional centered": BASE, "+LSD centered": BASE, RUNG: up}, seeds)
    assert "partial (H3 lacks seeds)" in _decide(tmp_path, capsys)  # stage 2 not run
    _cache(tmp_path, {"BSD centered": BASE, FULL_NEW: [v - 1.0 for v in BASE]}, seeds)
    out = _decide(tmp_path, capsys)
    assert "H3 fails" in out and "ADOPTED" not in out  # harm in the full model
    _cache(tmp_path, {FULL_NEW: [v + 0.1 * (-1) ** i for i, v in enumerate(BASE)]}, seeds)
    assert "ADOPTED on validation: H1 and H2 and H3 pass" in _decide(tmp_path, capsys)


def test_rule_s33b_rejects_harm_on_the_rung(tmp_path, capsys) -> None:
    """C above the row without LSD (H1 passes) but below today's LSD row (H2 fails)."""
    seeds = range(90, 95)
    runs = {
        "+bidirectional centered": BASE,
        RUNG: [v + 1.0 + 0.1 * i for i, v in enumerate(BASE)],
        "+LSD centered": [v + 2.0 + 0.05 * i for i, v in enumerate(BASE)],
    }
    _cache(tmp_path, runs, seeds)
    out = _decide(tmp_path, capsys)
    assert "H2 fails" in out and "ADOPTED" not in out
