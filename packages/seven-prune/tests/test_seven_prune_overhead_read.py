"""`scripts/overhead_read.py`, the read of the shipped default's 16 x 32 overhead: its reading
(stall filter, (u + c / 10) / P per run, two-level bootstrap, verdict) on synthetic runs with
known figures, and on the committed runs of rule s30b, whose `analysis.txt` it must reproduce."""

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
S30B = Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "seven-prune-overhead-s30b"


@pytest.fixture
def read(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module("overhead_read")


def _run(i: int, u: float, c: float, plain: float, stalls: tuple[int, ...] = ()) -> dict:
    """60 rounds, a cut every 10th; pruner u on update rounds, u + c on cut rounds; the rounds in
    `stalls` have a plain step of 10 x and a pruner time of 100 s (must be dropped)."""
    is_cut = [(r + 1) % 10 == 0 for r in range(60)]
    prune = [u + c if cut else u for cut in is_cut]
    p = [plain] * 60
    for r in stalls:
        p[r], prune[r] = 10 * plain, 100.0
    return {
        "run": i, "started_utc": "00:00:00", "plain_step": p, "step": [plain * 1.05] * 60,
        "prune": prune, "is_cut": is_cut,
    }  # fmt: skip


def test_reading_of_known_runs(read: Any) -> None:
    """Constant rounds: each run's overhead is (u + c / 10) / P exactly, stall rounds dropped,
    the pooled figure the mean over runs, its CI around it, and the verdict by the upper bound."""
    runs = [
        _run(1, 0.030, 0.060, 1.0, (3, 9)),
        _run(2, 0.040, 0.070, 1.0),
        _run(3, 0.034, 0.08, 1.0),
    ]
    np.testing.assert_allclose(read.point(runs[0]), [0.036, 0.030, 0.060], rtol=1e-12)
    res = read.analyse(runs)
    assert [r["stall_rounds"] for r in res["runs"]] == [2, 0, 0]
    assert res["overhead"] == pytest.approx((0.036 + 0.047 + 0.042) / 3, rel=1e-12)
    assert res["lo"] == pytest.approx(0.036, rel=1e-9) and res["hi"] == pytest.approx(0.047)
    assert res["verdict"] == "met"
    high = read.analyse([_run(i, 0.046, 0.07, 1.0) for i in (1, 2, 3)])
    assert high["overhead"] == pytest.approx(0.053) and high["verdict"] == "missed"
    assert read.analyse(runs[:2])["verdict"] == "partial"
    assert "pooled overhead 4.17% [3.60, 4.70]" in read.report(res)


@pytest.mark.parametrize(
    ("est", "hi", "n", "want"),
    [(0.049, 0.0499, 3, "met"), (0.049, 0.0501, 4, "not resolved"), (0.05, 0.05, 4, "not resolved"),
     (0.0501, 0.06, 4, "missed"), (0.01, 0.02, 2, "partial")],
)  # fmt: skip
def test_verdict(read: Any, est: float, hi: float, n: int, want: str) -> None:
    assert read.verdict(est, hi, n) == want


@pytest.mark.parametrize("factor", [1.0, 0.5, True, "2"])
def test_bad_stall_factor_raises(read: Any, factor: Any) -> None:
    with pytest.raises(ValueError, match="factor"):
        read.kept_rounds(np.ones(4), np.ones(4), factor)


def test_reproduces_the_committed_s30b_reading(read: Any) -> None:
    """On rule s30b's committed runs the reading prints the figures of its analysis.txt."""
    if not S30B.is_dir():
        pytest.skip("the repository's docs/benchmarks are not beside the package")
    res = read.analyse(read.load_runs(S30B))
    text = read.report(res)
    committed = (S30B / "analysis.txt").read_text()
    for r in res["runs"]:
        row = (f"| {r['run']} | 1 | {r['started_utc']} | {r['stall_rounds']} | "
               f"{r['plain_step_s']:.3f} | {r['update_ms']:.1f} | {r['cut_ms']:.1f} | "
               f"{r['overhead'] * 100:.2f}% [{r['lo'] * 100:.2f}, {r['hi'] * 100:.2f}] | "
               f"{r['by_medians'] * 100:.2f}% |")  # fmt: skip
        assert row in committed
    assert "pooled overhead 4.89% [4.70, 5.13]" in text
    assert "update 34.5 ms [32.8, 36.4], cut 67.3 ms [59.3, 75.6]" in text
    assert res["verdict"] == "not resolved"
