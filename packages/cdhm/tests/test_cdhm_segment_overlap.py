"""Session 33b's reading (issue 18): overlapping segments of the order-envelope front end
(``order_envelope_segments(segment_overlap=...)``, bench rows ``...+ovl0.5``)."""

from __future__ import annotations

import numpy as np
import pytest
from cdhm import simulate_domain
from cdhm.bench import (
    DEFAULT_ROW,
    OPTION_VARIANTS,
    SEGMENT_OVERLAP,
    BenchConfig,
    _cache_key,
    _estimator,
    method_inputs,
    method_steps,
)
from cdhm.data import apply_front_end, order_envelope_segments, overlapping_segment_count


@pytest.fixture(scope="module")
def windows():
    d = simulate_domain(
        "L0", 0, seed=0, tier="mild", recordings_per_class=1, windows_per_recording=2, window=1024
    )
    return d


def test_overlapping_segment_count_is_its_equation():
    """T' = (L - d) / (d (1 - o)) + 1 with d = L / T."""
    assert overlapping_segment_count(8192, 4, 0.0) == 4
    assert overlapping_segment_count(8192, 4, 0.5) == 7
    assert overlapping_segment_count(8192, 4, 0.75) == 13
    assert overlapping_segment_count(1024, 2, 0.5) == 3


@pytest.mark.parametrize(
    ("value", "err"),
    [
        (True, TypeError),
        ("0.5", TypeError),
        (None, TypeError),
        (-0.1, ValueError),
        (1.0, ValueError),
        (float("nan"), ValueError),
        (0.3, ValueError),
    ],
)
def test_bad_segment_overlap_raises_naming_it(value, err):
    with pytest.raises(err, match="segment_overlap"):
        overlapping_segment_count(8192, 4, value)


def test_bad_segment_overlap_raises_in_the_front_end(windows):
    with pytest.raises(ValueError, match="segment_overlap"):
        order_envelope_segments(windows.x, windows.fs, windows.rpm, 2, segment_overlap=1.5)


def test_overlap_zero_is_the_committed_front_end_exactly(windows):
    a = order_envelope_segments(windows.x, windows.fs, windows.rpm, 2)
    b = order_envelope_segments(windows.x, windows.fs, windows.rpm, 2, segment_overlap=0.0)
    assert a.dtype == b.dtype and np.array_equal(a, b)


def test_overlapping_segments_are_the_shifted_envelope_slices(windows):
    """With 50 % overlap, T = 2 on 1024 samples: 3 blocks; blocks 0 and 2 are the consecutive
    reading's blocks 0 and 1 (same samples), block 1 differs from both (the middle slice)."""
    k = 120
    cons = order_envelope_segments(windows.x, windows.fs, windows.rpm, 2).reshape(-1, 2, k)
    ovl = order_envelope_segments(windows.x, windows.fs, windows.rpm, 2, segment_overlap=0.5)
    ovl = ovl.reshape(-1, 3, k)
    assert np.array_equal(ovl[:, 0], cons[:, 0]) and np.array_equal(ovl[:, 2], cons[:, 1])
    assert not np.allclose(ovl[:, 1], cons[:, 0]) and not np.allclose(ovl[:, 1], cons[:, 1])


def test_overlap_rows_are_the_default_and_its_temporal_rung_on_seven_steps():
    cfg = BenchConfig()
    assert set(SEGMENT_OVERLAP) == {
        DEFAULT_ROW + "+ovl0.5",
        "CDHM-no-temporal+adda+optcarry+sskip+ovl0.5",
    }
    for row in SEGMENT_OVERLAP:
        base = row.removesuffix("+ovl0.5")
        assert OPTION_VARIANTS[row] == OPTION_VARIANTS[base]
        assert method_steps(row, cfg) == 7 and _estimator(row, cfg, 0).n_segments == 7
        a, b = _estimator(row, cfg, 0).get_params(), _estimator(base, cfg, 0).get_params()
        assert {k for k in a if a[k] != b[k]} == {"n_segments"}
    assert method_steps(DEFAULT_ROW, cfg) == 4 and _estimator(DEFAULT_ROW, cfg, 0).n_segments == 4


def test_overlap_is_absent_from_every_cache_key():
    """No config field or CDHM default holds the overlap: the default's key is unchanged."""
    key = _cache_key(BenchConfig())
    assert "overlap" not in key and "ovl" not in key
    assert key == _cache_key(BenchConfig(methods=(DEFAULT_ROW + "+ovl0.5",)))


def test_method_inputs_builds_the_overlapped_front_end_once(windows):
    cfg = BenchConfig(window=1024, n_segments=2)
    splits = (windows, windows, windows, windows)
    fe = {"order-envelope": tuple(apply_front_end(d, "order-envelope", 2) for d in splits)}
    row = DEFAULT_ROW + "+ovl0.5"
    got = method_inputs(row, cfg, fe, splits)
    assert got[0].x.shape == (len(windows), 3 * 120)
    assert method_inputs(row, cfg, fe, splits) is got  # memoised in fe
    assert method_inputs(DEFAULT_ROW, cfg, fe, splits) is fe["order-envelope"]
    with pytest.raises(ValueError, match="front_end"):
        method_inputs(row, BenchConfig(front_end="raw"), {"raw": splits}, splits)


def test_an_overlap_row_runs_through_the_bench_on_its_steps(monkeypatch):
    """run_task fits the overlap row on T' = 3 steps of a T = 2 config (tiny, 1 epoch)."""
    import cdhm.bench as bench

    fits = []
    orig = bench.CDHMClassifier.fit

    def spy(self, X, *a, **k):
        fits.append((self.n_segments, np.asarray(X).shape[1]))
        return orig(self, X, *a, **k)

    monkeypatch.setattr(bench.CDHMClassifier, "fit", spy)
    cfg = BenchConfig(
        tasks=[(0, 1)],
        seeds=[0],
        epochs=1,
        recordings_per_class=2,
        windows_per_recording=2,
        window=1024,
        n_segments=2,
        cdhm_kwargs={"s_dim": 2, "z_dim": 2, "hidden": 8, "epochs": 1},
    )
    row = DEFAULT_ROW + "+ovl0.5"
    out = bench.run_task(0, 1, 0, cfg, [row])
    assert fits == [(3, 3 * 120)]
    assert 0.0 <= out[row]["metrics"]["acc_target"] <= 1.0
