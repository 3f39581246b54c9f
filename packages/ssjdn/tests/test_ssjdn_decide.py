"""`scripts/decide.py`: the pre-registered decision read from a (here synthetic) bench cache."""

import json
import sys
from pathlib import Path

import pytest
from ssjdn.bench import BenchSettings, cache_stem

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide  # noqa: E402  (the scripts folder is not a package)


def _cache(root: Path, runs: dict[str, list[float]], seeds: range) -> None:
    folder = root / "val" / BenchSettings.quick().key()
    folder.mkdir(parents=True)
    for name, values in runs.items():
        for seed, v in zip(seeds, values):
            metrics = {"mR": v, "hard_mR": v / 2, "sgs_map_corr": -1.0}
            (folder / f"{cache_stem(name, seed)}.json").write_text(json.dumps({"metrics": metrics}))


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert decide.main(["--rule", "s23", "--cache", str(tmp_path), *extra]) == 0
    return capsys.readouterr().out


def test_rule_s23_adopts_when_both_checks_pass(tmp_path, capsys) -> None:
    seeds = range(30, 35)
    base = [10.0, 11.0, 12.0, 10.5, 11.5]
    _cache(
        tmp_path,
        {
            "+SGS (one direction)": base,
            "+bidirectional complement": [v + 1.0 + 0.1 * i for i, v in enumerate(base)],
            "+STL (full SSJDN)": base,
            "BSD complement": [v + 0.2 for v in base],
        },
        seeds,
    )
    out = _run(tmp_path, capsys)
    assert "decision: sgs_guide_c2f='complement'; ADOPTED on validation: B1 and B2 pass" in out
    assert "probe sgs_map_corr" in out and "-1.000" in out


def test_rule_s23_fails_at_the_first_failing_check_and_is_partial_without_seeds(
    tmp_path, capsys
) -> None:
    seeds = range(30, 35)
    base = [10.0, 11.0, 12.0, 10.5, 11.5]
    _cache(
        tmp_path,
        {
            "+SGS (one direction)": base,
            "+bidirectional complement": [v - 1.0 for v in base],
            "+STL (full SSJDN)": base[:4],
            "BSD complement": base[:4],
        },
        seeds,
    )
    out = _run(tmp_path, capsys)
    assert "B1 fails" in out and "not adopted" in out
    assert "decision" not in _run(tmp_path, capsys, "--metric", "hard_mR")
    out = _run(
        tmp_path, capsys, "--check", "B2", "not_worse", "BSD complement", "+STL (full SSJDN)"
    )
    assert "partial (B2 lacks seeds)" in out


def test_bad_test_name_is_refused(tmp_path) -> None:
    with pytest.raises(SystemExit):
        decide.main(["--seeds", "30", "34", "--check", "B1", "bogus", "a", "b"])


def test_rule_s24_reads_the_split_on_seeds_35_to_39(tmp_path, capsys) -> None:
    seeds = range(35, 40)
    base = [10.0, 11.0, 12.0, 10.5, 11.5]
    _cache(
        tmp_path,
        {
            "+SGS (one direction)": base,
            "+bidirectional split": [v + 1.0 + 0.1 * i for i, v in enumerate(base)],
            "+STL (full SSJDN)": base,
            "BSD split": [v - 0.3 for v in base],
        },
        seeds,
    )
    assert decide.main(["--rule", "s24", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "decision: sgs_pass_scales='split'" in out
    assert "B2 fails" in out and "not adopted" in out
    assert "AMFMN-style" in out  # the peer goal is reported (here without runs: '-')


def test_rule_s24b_reads_the_half_heads_on_seeds_40_to_44(tmp_path, capsys) -> None:
    seeds = range(40, 45)
    base = [10.0, 11.0, 12.0, 10.5, 11.5]
    _cache(
        tmp_path,
        {
            "+SGS (one direction)": base,
            "+bidirectional per-pass half proj": [v + 1.0 + 0.1 * i for i, v in enumerate(base)],
            "+STL (full SSJDN)": base,
            "BSD per-pass half proj": [v + 0.1 * (i % 2) for i, v in enumerate(base)],
        },
        seeds,
    )
    assert decide.main(["--rule", "s24b", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "decision: sgs_proj='per_pass_half'; ADOPTED on validation: B1 and B2 pass" in out
    assert "+bidirectional per-pass half proj - +SGS (one direction)" in out
    _cache(tmp_path / "other", {"+SGS (one direction)": base}, range(35, 40))
    assert decide.main(["--rule", "s24b", "--cache", str(tmp_path / "other")]) == 0
    assert "partial (B1 lacks seeds)" in capsys.readouterr().out
