"""Issue 19, session 28: the precise validation read of the two missed rungs (rule
``docs/benchmarks/ssjdn_validation_s28_rule.md``), its decision logic on made-up runs."""

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from maskloop.report import PairedDifference

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import decide_s28 as s28  # noqa: E402  (the scripts folder is not a package)

ONE, BI, LSD = s28.ONE, s28.BI, s28.LSD
FULL, NO_LSD = s28.FULL, s28.NO_LSD
BASE = [14.0, 15.5, 13.0, 16.0, 14.5, 15.0, 17.0, 13.5, 16.5, 15.2]


def _d(mean: float, low: float, high: float) -> PairedDifference:
    return PairedDifference(mean=mean, low=low, high=high, n=10)


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (_d(0.8, 0.1, 1.5), "adds"),
        (_d(0.5, 0.0, 1.0), "unresolved"),  # a lower bound of exactly 0 does not add
        (_d(-0.8, -1.5, -0.1), "hurts"),
        (_d(-0.3, -1.0, 0.0), "below 1 mR"),  # an upper bound of exactly 0 does not hurt
        (_d(0.2, -0.5, 0.99), "below 1 mR"),
        (_d(0.3, -0.5, 1.0), "unresolved"),  # the bound is strict
        (_d(0.6, -0.4, 1.8), "unresolved"),
    ],
)
def test_classify_reads_the_ci_as_the_rule_says(d: PairedDifference, expected: str) -> None:
    assert s28.classify(d) == expected


@pytest.mark.parametrize("bad", [0.5, None, (0.1, 0.2, 0.3)])
def test_classify_refuses_what_is_not_a_paired_difference(bad: object) -> None:
    with pytest.raises(TypeError, match="d must be a PairedDifference"):
        s28.classify(bad)  # type: ignore[arg-type]


def _runs(bi_gain: float, lsd_gain: float) -> dict[str, list[float]]:
    """Made-up rungs on 10 seeds: the bidirectional model ``bi_gain`` above one direction, the
    LSD model ``lsd_gain`` above the bidirectional one, with a small per-seed wobble."""
    wobble = [0.3, -0.2, 0.1, -0.4, 0.2, 0.0, -0.1, 0.4, -0.3, 0.1]
    bi = [v + bi_gain + w for v, w in zip(BASE, wobble)]
    return {ONE: BASE, BI: bi, LSD: [v + lsd_gain - w for v, w in zip(bi, wobble)]}


def test_a_rung_that_adds_on_all_10_seeds_gets_the_test_extension(
    tmp_path: Path, write_val_runs: Callable
) -> None:
    write_val_runs(tmp_path, _runs(bi_gain=1.0, lsd_gain=0.0), s28.VAL_SEEDS)
    s = s28.summarize(tmp_path)
    bi, lsd = s["reads"]["bidirectional rung"], s["reads"]["LSD rung"]
    assert (bi["class"], bi["n"], bi["partial"]) == ("adds", 10, False)
    assert lsd["class"] == "below 1 mR" and lsd["low"] < 0 < lsd["high"] < 1
    assert s["test_extension"] == ["bidirectional rung"]
    assert s["methods"][ONE]["n"] == 10 and s["methods"][ONE]["mean"] == pytest.approx(15.02)


def test_both_rungs_adding_keep_the_bidirectional_one_first(
    tmp_path: Path, write_val_runs: Callable
) -> None:
    write_val_runs(tmp_path, _runs(bi_gain=1.0, lsd_gain=1.2), s28.VAL_SEEDS)
    assert s28.summarize(tmp_path)["test_extension"] == ["bidirectional rung", "LSD rung"]


def test_a_partial_read_gets_no_test_extension(tmp_path: Path, write_val_runs: Callable) -> None:
    runs = _runs(bi_gain=1.0, lsd_gain=1.2)
    write_val_runs(tmp_path, {m: v[:9] for m, v in runs.items()}, s28.VAL_SEEDS)
    s = s28.summarize(tmp_path)
    assert s["reads"]["bidirectional rung"]["class"] == "adds"
    assert s["reads"]["bidirectional rung"]["partial"] and s["reads"]["LSD rung"]["n"] == 9
    assert s["test_extension"] == []


def test_a_rung_below_its_lower_one_hurts(tmp_path: Path, write_val_runs: Callable) -> None:
    write_val_runs(tmp_path, _runs(bi_gain=0.0, lsd_gain=-1.5), s28.VAL_SEEDS)
    s = s28.summarize(tmp_path)
    assert s["reads"]["LSD rung"]["class"] == "hurts" and s["test_extension"] == []


def test_the_leave_one_out_is_read_fresh_and_pooled_with_60_to_64(
    tmp_path: Path, write_val_runs: Callable
) -> None:
    write_val_runs(tmp_path, {FULL: BASE[:5], NO_LSD: [v - 0.5 for v in BASE[:5]]}, s28.SEEN_SEEDS)
    fresh = {FULL: BASE[5:8], NO_LSD: [v - 0.6 for v in BASE[5:8]]}
    write_val_runs(tmp_path, fresh, s28.VAL_SEEDS)
    reads = s28.summarize(tmp_path)["reads"]
    alone = reads["full - (full without LSD)"]
    pooled = reads["full - (full without LSD), pooled with 60..64"]
    assert (alone["n"], alone["partial"], alone["seeds"]) == (3, True, [65, 66, 67])
    assert pooled["n"] == 8 and pooled["seeds"] == [60, 61, 62, 63, 64, 65, 66, 67]
    assert pooled["mean"] == pytest.approx((5 * 0.5 + 3 * 0.6) / 8)
    # the other leave-one-out never ran: no row, and no rung row either
    assert set(reads) == {
        "full - (full without LSD)",
        "full - (full without LSD), pooled with 60..64",
    }


def test_the_test_read_judges_the_rungs_on_seeds_0_to_19(
    tmp_path: Path, write_val_runs: Callable, capsys: pytest.CaptureFixture
) -> None:
    runs = _runs(bi_gain=1.0, lsd_gain=0.0)
    twenty = {m: v + [x + 0.5 for x in v] for m, v in runs.items()}
    write_val_runs(tmp_path, twenty, s28.TEST_SEEDS, split="test")
    argv = ["--cache", str(tmp_path), "--split", "test", "--seeds", "0", "19"]
    assert s28.main(argv) == 0
    out = capsys.readouterr().out
    assert "test goal bidirectional rung: met" in out and "test goal LSD rung: missed" in out
    assert "pooled" not in out and "test extension" not in out


@pytest.mark.parametrize(
    "argv",
    [["--seeds", "65", "79"], ["--seeds", "60", "74"], ["--split", "test", "--seeds", "0", "9"]],
)
def test_other_seed_ranges_than_the_rules_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        s28.main(argv)


def test_main_writes_the_summary(tmp_path: Path, write_val_runs: Callable, capsys) -> None:
    write_val_runs(tmp_path, _runs(bi_gain=1.0, lsd_gain=0.0), s28.VAL_SEEDS)
    out = tmp_path / "decision.json"
    assert s28.main(["--cache", str(tmp_path), "--write", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["test_extension"] == ["bidirectional rung"]
    assert saved["reads"]["LSD rung"]["class"] == "below 1 mR"
    assert "test extension (rule s28): bidirectional rung" in capsys.readouterr().out


def test_the_post_hoc_pool_of_the_rungs_decides_nothing(
    tmp_path: Path, write_val_runs: Callable
) -> None:
    """The rungs pooled with seeds 60..64 (not in the rule) are kept apart from the rule's reads:
    a pooled rung that adds does not open the test extension."""
    runs = _runs(bi_gain=1.0, lsd_gain=0.0)
    write_val_runs(tmp_path, {m: v[:5] for m, v in runs.items()}, s28.SEEN_SEEDS)
    write_val_runs(tmp_path, {m: v[5:9] for m, v in runs.items()}, s28.VAL_SEEDS)
    s = s28.summarize(tmp_path)
    pooled = s["post_hoc"]["bidirectional rung, pooled with 60..64"]
    assert (pooled["n"], pooled["class"]) == (9, "adds")
    assert s["reads"]["bidirectional rung"]["n"] == 4 and s["test_extension"] == []
    assert not any("pooled" in k and "rung" in k for k in s["reads"])
