"""Simulator physics, splits and the CWRU loader (on .mat files written here)."""

import numpy as np
import pytest
from cdhm.cwru import write_cwru_files
from cdhm.data import (
    BEARING_6205_ORDERS,
    CLASSES_10,
    CWRU_FILES,
    DOMAIN_TIERS,
    FRONT_ENDS,
    SEGMENT_ORDERS,
    apply_front_end,
    cwru_transfer_tasks,
    envelope_order_spectrum,
    load_cwru,
    order_envelope_segments,
    segment_windows,
    simulate_domain,
    simulate_recording,
    split_by_recording,
)
from scipy.io import savemat


@pytest.mark.parametrize("fault", ["outer", "inner", "ball"])
@pytest.mark.parametrize("tier", ["mild", "hard"])
def test_envelope_peak_at_fault_order(fault, tier):
    for dom in (DOMAIN_TIERS[tier][0], DOMAIN_TIERS[tier][-1]):
        x = simulate_recording(fault, dom, 4.0, rng=np.random.default_rng(1))
        orders, spec = envelope_order_spectrum(x, 12000.0, dom.rpm)
        band = (orders > 2) & (orders < 7)
        peak = orders[band][np.argmax(spec[band])]
        assert abs(peak - BEARING_6205_ORDERS[fault]) < 0.1, (fault, dom.name, peak)


def test_normal_has_no_fault_peak():
    dom = DOMAIN_TIERS["hard"][0]
    x_n = simulate_recording("normal", dom, 1.5, rng=np.random.default_rng(0))
    x_o = simulate_recording("outer", dom, 1.5, rng=np.random.default_rng(0))
    o, s_n = envelope_order_spectrum(x_n, 12000.0, dom.rpm)
    _, s_o = envelope_order_spectrum(x_o, 12000.0, dom.rpm)
    k = np.argmin(np.abs(o - BEARING_6205_ORDERS["outer"]))
    assert s_o[k] > 5 * s_n[k]


def test_simulate_domain_and_split_by_recording():
    d = simulate_domain("B", 1, recordings_per_class=4, windows_per_recording=3, window=512)
    assert d.x.shape == (4 * 4 * 3, 512) and d.x.dtype == np.float32
    assert set(d.domain) == {1}
    tr, te = split_by_recording(d, 0.5, seed=0)
    assert not set(tr.recording) & set(te.recording)
    assert len(tr) + len(te) == len(d)
    assert set(tr.y) == set(te.y) == {0, 1, 2, 3}


def test_segment_windows_and_bad_inputs():
    x = np.zeros((3, 64))
    assert segment_windows(x, 4).shape == (3, 4, 16)
    with pytest.raises(ValueError, match="n_segments=5 must be >= 1 and divide"):
        segment_windows(x, 5)
    with pytest.raises(ValueError, match="shape"):
        segment_windows(np.zeros(64), 4)
    with pytest.raises(ValueError, match="unknown class 'cage'"):
        simulate_domain("A", classes=("normal", "cage"))
    with pytest.raises(ValueError, match="not in tier"):
        simulate_domain("Z")


def _write_cwru(root, n12=1200, n48=4800, skip_key=None, short=None):
    rng = np.random.default_rng(0)
    for cname, nums in CWRU_FILES.items():
        for num in nums:
            n = n48 if cname == "normal" else n12
            if num == short:
                n = 100
            data = {f"X{num:03d}_FE_time": rng.standard_normal((n, 1)), f"X{num:03d}RPM": 1797}
            if num != skip_key:
                data[f"X{num:03d}_DE_time"] = rng.standard_normal((n, 1))
            savemat(root / f"{num}.mat", data)


def test_cwru_loader_reads_real_key_names(tmp_path):
    _write_cwru(tmp_path)
    d = load_cwru(tmp_path, window=256, chunks_per_file=2)
    assert d.classes == CLASSES_10
    assert set(d.y) == set(range(10)) and set(d.domain) == {0, 1, 2, 3}
    # 1200 samples -> 2 chunks of 600 -> 2 windows of 256; normal 4800 @48k -> 1200 @12k.
    assert len(d) == 10 * 4 * 2 * 2
    assert d.x.shape[1] == 256
    assert set(d.rpm[d.domain == 3]) == {1730.0}
    tr, te = split_by_recording(d, 0.5)
    assert not set(tr.recording) & set(te.recording)
    assert len(cwru_transfer_tasks()) == 12


@pytest.mark.parametrize("fault", ["outer", "inner", "ball"])
def test_order_envelope_front_end_peaks_at_fault_order_for_any_speed(fault):
    peaks = []
    for dom in (DOMAIN_TIERS["hard"][0], DOMAIN_TIERS["hard"][-1]):  # 1500 and 1950 rpm
        sig = simulate_recording(fault, dom, 8192 * 8 / 12000.0, rng=np.random.default_rng(3))
        x = sig[: 8 * 8192].reshape(8, 8192)
        feats = order_envelope_segments(x, 12000.0, dom.rpm, 4)
        assert feats.shape == (8, 4 * len(SEGMENT_ORDERS)) and feats.dtype == np.float32
        spec = feats.reshape(8, 4, -1).mean(axis=(0, 1))  # mean over windows and segments
        band = (SEGMENT_ORDERS > 2) & (SEGMENT_ORDERS < 7)
        peaks.append(SEGMENT_ORDERS[band][np.argmax(spec[band])])
    # Order normalisation: the same peak at 1500 and 1950 rpm, at the fault order.
    for p in peaks:
        assert abs(p - BEARING_6205_ORDERS[fault]) < 0.15, (fault, peaks)


def test_apply_front_end_and_bad_inputs():
    d = simulate_domain("A", 0, recordings_per_class=2, windows_per_recording=2, window=1024)
    assert apply_front_end(d, "raw", 4) is d
    oe = apply_front_end(d, "order-envelope", 4)
    assert oe.x.shape == (len(d), 4 * len(SEGMENT_ORDERS)) and np.isfinite(oe.x).all()
    np.testing.assert_array_equal(oe.y, d.y)
    assert "order-envelope" in FRONT_ENDS
    with pytest.raises(ValueError, match="front_end must be one of"):
        apply_front_end(d, "wavelet", 4)
    with pytest.raises(ValueError, match="n_segments=3 must be >= 1 and divide"):
        order_envelope_segments(d.x, 12000.0, 1500.0, 3)
    with pytest.raises(ValueError, match="rpm must be > 0"):
        order_envelope_segments(d.x, 12000.0, 0.0, 4)
    bad = d.x.copy()
    bad[1, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        order_envelope_segments(bad, 12000.0, 1500.0, 4)
    with pytest.raises(ValueError, match="shape"):
        order_envelope_segments(d.x[0], 12000.0, 1500.0, 4)


def test_cwru_format_generator_round_trip(tmp_path):
    paths = write_cwru_files(tmp_path, seconds=0.5, seed=1, with_fs=True)
    assert len(paths) == 40
    d = load_cwru(tmp_path, window=512, chunks_per_file=2)
    # 0.5 s at 12 kHz = 6000 samples -> 2 chunks of 3000 -> 5 windows of 512 each.
    assert len(d) == 40 * 2 * 5 and d.classes == CLASSES_10
    # The loader path sees the fault physics: outer-race files peak at BPFO.
    o = d.subset((d.y == CLASSES_10.index("outer_021")) & (d.domain == 0))
    orders, spec = envelope_order_spectrum(o.x, 12000.0, o.rpm)
    band = (orders > 2) & (orders < 7)
    assert abs(orders[band][np.argmax(spec.mean(0)[band])] - BEARING_6205_ORDERS["outer"]) < 0.1


@pytest.mark.parametrize("fault", ["outer", "inner"])
def test_field_tier_keeps_defect_orders_at_the_loaded_speed(fault):
    """Field tier: the envelope peaks at the defect order of the *loaded* shaft speed, at the
    fan-end sensor and under impulsive + harmonic interference too."""
    for dom in DOMAIN_TIERS["field"]:
        x = simulate_recording(fault, dom, 3.0, rng=np.random.default_rng(2))
        orders, spec = envelope_order_spectrum(x, 12000.0, dom.shaft_rpm)
        k = np.argmin(np.abs(orders - BEARING_6205_ORDERS[fault]))
        if dom.impulse_rate_hz == 0:  # clean paths: the defect order is the highest line
            band = (orders > 2) & (orders < 7)
            assert abs(orders[band][np.argmax(spec[band])] - orders[k]) < 0.1, dom
        n = simulate_recording("normal", dom, 3.0, rng=np.random.default_rng(2))
        _, spec_n = envelope_order_spectrum(n, 12000.0, dom.shaft_rpm)
        assert spec[k] > 1.5 * spec_n[k], dom  # the defect line stands above a healthy bearing's
    loaded = DOMAIN_TIERS["field"][1]
    assert loaded.shaft_rpm == pytest.approx(1797 - 3 * 22.0)
    d = simulate_domain("DE3", 1, tier="field", recordings_per_class=2, windows_per_recording=2)
    assert set(d.rpm) == {loaded.shaft_rpm}


def test_field_tier_effects_are_present():
    """Fan-end path lowers and reshapes the impacts; interference puts a line at its frequency;
    impulsive interference adds strong non-bearing impacts to a healthy bearing's signal."""
    de0, _, fe0, fe3 = DOMAIN_TIERS["field"]
    rng = np.random.default_rng
    from dataclasses import replace

    de = replace(de0, snr_db=60.0)  # near noise-free: compare the impact paths alone
    x_de = simulate_recording("outer", de, 2.0, rng=rng(0))
    x_fe = simulate_recording("outer", replace(de, sensor="FE"), 2.0, rng=rng(0))
    hp = lambda x: x - np.convolve(x, np.ones(5) / 5, mode="same")  # noqa: E731
    assert np.std(hp(x_fe)) < 0.8 * np.std(hp(x_de))  # attenuated through the longer path

    def centroid(x):
        p = np.abs(np.fft.rfft(x - np.convolve(x, np.ones(41) / 41, mode="same"))) ** 2
        return np.sum(np.fft.rfftfreq(len(x), 1 / 12000.0) * p) / np.sum(p)

    assert centroid(x_fe) < centroid(x_de) - 200  # the lower path resonance shapes the impacts
    x = simulate_recording("normal", fe3, 2.0, rng=rng(1))
    spec = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / 12000.0)
    line = spec[np.argmin(np.abs(freqs - fe3.interference_hz))]
    assert line > 20 * np.median(spec[(freqs > 100) & (freqs < 1000)])
    base = replace(fe0, snr_db=60.0)
    quiet = simulate_recording("normal", base, 2.0, rng=rng(1))
    bumpy = simulate_recording(
        "normal",
        replace(base, impulse_rate_hz=fe3.impulse_rate_hz, impulse_amp=fe3.impulse_amp),
        2.0,
        rng=rng(1),
    )

    # machinery impacts: far more high-frequency energy and higher peaks than the healthy
    # bearing's rare weak impacts
    assert np.sum(hp(bumpy) ** 2) > 10 * np.sum(hp(quiet) ** 2)
    assert np.abs(hp(bumpy)).max() > 2 * np.abs(hp(quiet)).max()


def test_run_to_failure_severity_grows():
    """simulate_run_to_failure: severity and the defect-order envelope line both grow."""
    from cdhm.data import simulate_run_to_failure

    dom = DOMAIN_TIERS["mild"][0]
    recs, sev = simulate_run_to_failure("outer", dom, n_recordings=8, seconds=1.0, seed=0)
    assert recs.shape == (8, 12000) and np.all(np.diff(sev) > 0)
    assert sev[0] == pytest.approx(0.05) and sev[-1] == pytest.approx(2.0)
    orders, spec = envelope_order_spectrum(recs, 12000.0, dom.rpm)
    k = np.argmin(np.abs(orders - BEARING_6205_ORDERS["outer"]))
    line = spec[:, k]
    # rank correlation of the BPFO line with time
    rank = np.argsort(np.argsort(line))
    assert np.corrcoef(rank, np.arange(8))[0, 1] > 0.9
    assert line[-1] > 5 * line[0]
    with pytest.raises(ValueError, match="n_recordings"):
        simulate_run_to_failure("outer", dom, n_recordings=1)
    with pytest.raises(ValueError, match="'inner', 'ball' or 'outer'"):
        simulate_run_to_failure("normal", dom)
