"""Bearing vibration data: a physics-based 6205-2RS simulator and a CWRU `.mat` loader.

Both produce a :class:`BearingData` of fixed-length windows with a label, a working-condition
(domain) index, the shaft speed and a *recording* id. Train/test splits are made by recording
(:func:`split_by_recording`), never by random windows: neighbouring windows of one recording
share the same noise realisation and slip pattern, so a random-window split leaks.

Simulator model (envelope-of-impacts model used throughout the bearing literature):

    x(t) = gain * [ sum_k a_k h(t - t_k) + sum_m A_m sin(2 pi m f_r t + phi_m) ] + n(t)

with impact times t_k spaced by 1 / (order * f_r) with 1-2 % slip jitter, the impulse response
h(t) = exp(-zeta 2 pi f_n t) sin(2 pi f_n sqrt(1 - zeta^2) t) of a structural resonance f_n,
inner-race amplitudes modulated at the shaft rate f_r, ball amplitudes at the cage rate
(FTF * f_r), severity scaling the amplitude and white noise n(t) at a given SNR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import signal as sps

__all__ = [
    "BEARING_6205_ORDERS",
    "CLASSES_4",
    "CLASSES_10",
    "CWRU_FILES",
    "CWRU_RPM",
    "DOMAIN_TIERS",
    "BearingData",
    "DomainSpec",
    "cwru_transfer_tasks",
    "FRONT_ENDS",
    "apply_front_end",
    "envelope_order_spectrum",
    "load_cwru",
    "order_envelope_segments",
    "segment_windows",
    "simulate_domain",
    "simulate_recording",
    "simulate_run_to_failure",
    "split_by_recording",
    "transfer_tasks",
]

#: Fault characteristic orders (multiples of the shaft frequency) of an SKF 6205-2RS bearing
#: (9 balls, ball diameter 7.94 mm, pitch diameter 39.04 mm, contact angle 0).
BEARING_6205_ORDERS: dict[str, float] = {
    "outer": 3.5848,  # BPFO
    "inner": 5.4152,  # BPFI
    "ball": 4.7135,  # 2 x BSF: a spalled ball strikes both races once per spin
    "cage": 0.3983,  # FTF
}

#: 4-class problem: healthy and one fault per location.
CLASSES_4: tuple[str, ...] = ("normal", "inner", "ball", "outer")
#: The CWRU 10-class problem: healthy plus 3 locations x 3 fault diameters (inches).
CLASSES_10: tuple[str, ...] = (
    "normal",
    "inner_007",
    "ball_007",
    "outer_007",
    "inner_014",
    "ball_014",
    "outer_014",
    "inner_021",
    "ball_021",
    "outer_021",
)
_SEVERITY = {"007": 0.6, "014": 1.0, "021": 1.4}


@dataclass(frozen=True)
class DomainSpec:
    """One working condition of the simulator: speed, resonance, damping, gain and SNR.

    The optional fields model the effects of the "field" tier (all off by default):
    ``load_hp`` lowers the shaft speed under load (induction-motor slip: rpm - `slip_rpm_per_hp`
    * load, as CWRU's 1797 -> 1730 rpm over 0 -> 3 hp); ``sensor`` "FE" (fan end) places the
    accelerometer across the shaft from the bearing: the impacts reach it through a second,
    lower structural resonance `path_resonance_hz` and attenuated by `path_gain`;
    ``impulse_rate_hz`` adds random strong impacts unrelated to the bearing (other machinery;
    Poisson, amplitude `impulse_amp`); ``interference_hz`` adds a sinusoidal interference with its
    first three harmonics (gear mesh, electrical supply) of amplitude `interference_amp`.
    """

    name: str
    rpm: float
    resonance_hz: float
    zeta: float
    gain: float
    snr_db: float
    load_hp: float = 0.0
    slip_rpm_per_hp: float = 22.0
    sensor: str = "DE"
    path_resonance_hz: float = 1800.0
    path_gain: float = 0.5
    impulse_rate_hz: float = 0.0
    impulse_amp: float = 2.0
    interference_hz: float = 0.0
    interference_amp: float = 0.3

    @property
    def shaft_rpm(self) -> float:
        """Shaft speed under load: rpm - slip_rpm_per_hp * load_hp."""
        return self.rpm - self.slip_rpm_per_hp * self.load_hp

    def __post_init__(self) -> None:
        if self.sensor not in ("DE", "FE"):
            raise ValueError(
                f"sensor must be 'DE' (drive end) or 'FE' (fan end), got {self.sensor!r}"
            )
        if self.load_hp < 0 or self.impulse_rate_hz < 0 or self.interference_hz < 0:
            raise ValueError(
                "load_hp, impulse_rate_hz and interference_hz must be >= 0, got "
                f"{self.load_hp!r}, {self.impulse_rate_hz!r}, {self.interference_hz!r}"
            )
        if self.rpm - self.slip_rpm_per_hp * self.load_hp <= 0:
            raise ValueError(f"the shaft speed under load must be > 0 ({self.name})")
        if self.rpm <= 0:
            raise ValueError(f"rpm must be > 0, got {self.rpm!r}")
        if not 0 < self.zeta < 1:
            raise ValueError(f"zeta must be in (0, 1), got {self.zeta!r}")
        if self.resonance_hz <= 0 or self.gain <= 0:
            raise ValueError(
                f"resonance_hz and gain must be > 0, got {self.resonance_hz!r}, {self.gain!r}"
            )


#: Two tiers of four working conditions each (12 ordered transfer tasks i -> j per tier).
#: "mild" mimics CWRU loads 0-3 (1797-1730 rpm, one test rig); "hard" changes speed by 30 %,
#: the structural resonance, damping, sensor gain and noise level.
DOMAIN_TIERS: dict[str, tuple[DomainSpec, ...]] = {
    "mild": (
        DomainSpec("L0", 1797, 3000.0, 0.07, 1.00, 10.0),
        DomainSpec("L1", 1772, 3050.0, 0.07, 1.05, 9.5),
        DomainSpec("L2", 1750, 3100.0, 0.07, 1.10, 9.0),
        DomainSpec("L3", 1730, 3150.0, 0.07, 1.15, 8.5),
    ),
    "hard": (
        DomainSpec("A", 1500, 2500.0, 0.05, 1.0, 10.0),
        DomainSpec("B", 1650, 3000.0, 0.07, 1.8, 6.0),
        DomainSpec("C", 1800, 3500.0, 0.09, 0.6, 3.0),
        DomainSpec("D", 1950, 4000.0, 0.10, 2.5, 0.0),
    ),
    # Field conditions: drive-end vs fan-end sensor (transmission path), motor load lowering the
    # speed, impulsive interference from other machinery, harmonic interference.
    "field": (
        DomainSpec("DE0", 1797, 3000.0, 0.06, 1.0, 8.0, load_hp=0.0, sensor="DE"),
        DomainSpec(
            "DE3",
            1797,
            3200.0,
            0.07,
            1.3,
            4.0,
            load_hp=3.0,
            sensor="DE",
            impulse_rate_hz=3.0,
            interference_hz=157.0,
        ),
        DomainSpec("FE0", 1797, 3000.0, 0.06, 1.0, 6.0, load_hp=0.0, sensor="FE"),
        DomainSpec(
            "FE3",
            1797,
            3200.0,
            0.07,
            0.8,
            2.0,
            load_hp=3.0,
            sensor="FE",
            impulse_rate_hz=4.0,
            impulse_amp=1.0,
            interference_hz=243.0,
        ),
    ),
}


@dataclass
class BearingData:
    """Windows of vibration with labels and metadata.

    Attributes: ``x`` (N, L) float32 windows; ``y`` (N,) class indices into ``classes``;
    ``domain`` (N,) working-condition index; ``recording`` (N,) recording id (split unit);
    ``rpm`` (N,) shaft speed; ``fs`` sampling rate in Hz.
    """

    x: np.ndarray
    y: np.ndarray
    domain: np.ndarray
    recording: np.ndarray
    rpm: np.ndarray
    fs: float
    classes: tuple[str, ...] = field(default=CLASSES_4)

    def __post_init__(self) -> None:
        n = len(self.x)
        for name in ("y", "domain", "recording", "rpm"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, x has {n}")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, idx: np.ndarray) -> BearingData:
        """Rows `idx` (indices or boolean mask)."""
        return replace(
            self,
            x=self.x[idx],
            y=self.y[idx],
            domain=self.domain[idx],
            recording=self.recording[idx],
            rpm=self.rpm[idx],
        )


def _check_window(window: int, n_segments: int | None = None) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 16:
        raise ValueError(f"window must be an int >= 16, got {window!r}")
    if n_segments is not None:
        if isinstance(n_segments, bool) or not isinstance(n_segments, (int, np.integer)):
            raise TypeError(f"n_segments must be an int, got {n_segments!r}")
        if n_segments < 1 or window % n_segments:
            raise ValueError(
                f"n_segments={n_segments!r} must be >= 1 and divide the window length {window}"
            )


def segment_windows(x: np.ndarray, n_segments: int) -> np.ndarray:
    """Split windows (N, L) into T = `n_segments` consecutive segments, shape (N, T, L / T)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n_windows, window_length), got shape {x.shape}")
    _check_window(x.shape[1], n_segments)
    return x.reshape(x.shape[0], n_segments, x.shape[1] // n_segments)


def _resonance(fs: float, f_n: float, zeta: float) -> np.ndarray:
    """Impulse response h(t) = exp(-zeta w_n t) sin(w_d t) until it decays to 0.1 %."""
    wn = 2 * np.pi * f_n
    dur = np.log(1000.0) / (zeta * wn)
    t = np.arange(int(np.ceil(dur * fs)) + 1) / fs
    return np.exp(-zeta * wn * t) * np.sin(wn * np.sqrt(1 - zeta**2) * t)


def _parse_class(name: str) -> tuple[str, float]:
    if name == "normal":
        return "normal", 0.0
    loc, _, size = name.partition("_")
    if loc not in ("inner", "ball", "outer") or (size and size not in _SEVERITY):
        raise ValueError(
            f"unknown class {name!r}; allowed: 'normal', 'inner'/'ball'/'outer' optionally with "
            f"a size suffix _007/_014/_021"
        )
    return loc, _SEVERITY.get(size, 1.0)


def simulate_recording(
    fault: str,
    domain: DomainSpec,
    seconds: float,
    fs: float = 12000.0,
    severity: float | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Simulate one recording (float64, `seconds * fs` samples) of class `fault` in `domain`.

    `fault` is 'normal', 'inner', 'ball', 'outer' or one of those with a CWRU size suffix
    ('inner_014'); `severity` overrides the size-implied impact amplitude.
    """
    if seconds <= 0 or fs <= 0:
        raise ValueError(f"seconds and fs must be > 0, got {seconds!r}, {fs!r}")
    if 2 * domain.resonance_hz >= fs:
        raise ValueError(f"resonance {domain.resonance_hz} Hz is above Nyquist for fs={fs}")
    loc, sev = _parse_class(fault)
    if severity is not None:
        sev = float(severity)
    rng = rng if rng is not None else np.random.default_rng()
    n = int(round(seconds * fs))
    t = np.arange(n) / fs
    fr = domain.shaft_rpm / 60.0
    # f_n varies a little between recordings (mounting), impacts excite it.
    f_n = domain.resonance_hz * (1 + 0.03 * rng.standard_normal())
    h = _resonance(fs, f_n, domain.zeta)
    impulses = np.zeros(n + len(h))
    if loc == "normal":
        # Rare weak random impacts (debris, rolling-element noise).
        k = rng.poisson(3.0 * seconds)
        pos = rng.integers(0, n, size=k)
        impulses[pos] += 0.15 * rng.uniform(0.5, 1.0, size=k)
    else:
        f_fault = BEARING_6205_ORDERS[loc] * fr
        jitter = rng.uniform(0.01, 0.02)
        intervals = (1.0 / f_fault) * (1 + jitter * rng.standard_normal(int(seconds * f_fault) + 4))
        times = rng.uniform(0, 1 / f_fault) + np.cumsum(intervals)
        times = times[times < seconds]
        amp = np.full(times.shape, sev)
        if loc == "inner":  # the defect rotates with the shaft through the load zone
            amp *= 0.6 + 0.4 * np.cos(2 * np.pi * fr * times + rng.uniform(0, 2 * np.pi))
        elif loc == "ball":  # the ball circulates with the cage
            fc = BEARING_6205_ORDERS["cage"] * fr
            amp *= 0.6 + 0.4 * np.cos(2 * np.pi * fc * times + rng.uniform(0, 2 * np.pi))
        amp *= 1 + 0.1 * rng.standard_normal(times.shape)
        np.add.at(impulses, np.round(times * fs).astype(int), amp)
    if domain.sensor == "FE":  # through the shaft and housing: a second, lower resonance
        h = sps.fftconvolve(h, _resonance(fs, domain.path_resonance_hz, 0.1))
        h = domain.path_gain * h / (np.abs(h).max() + 1e-12)
    if domain.impulse_rate_hz > 0:  # impacts from other machinery, not periodic
        k = rng.poisson(domain.impulse_rate_hz * seconds)
        impulses[rng.integers(0, n, size=k)] += domain.impulse_amp * rng.uniform(0.5, 1.0, size=k)
    impacts = sps.fftconvolve(impulses, h)[:n]
    harmonics = np.zeros(n)
    for m, a in ((1, 0.3), (2, 0.15), (3, 0.07)):
        harmonics += (
            a * rng.uniform(0.7, 1.3) * np.sin(2 * np.pi * m * fr * t + rng.uniform(0, 6.3))
        )
    if domain.interference_hz > 0:
        for m, a in ((1, 1.0), (2, 0.5), (3, 0.25)):
            harmonics += (
                domain.interference_amp
                * a
                * np.sin(2 * np.pi * m * domain.interference_hz * t + rng.uniform(0, 6.3))
            )
    clean = domain.gain * (impacts + harmonics)
    ref = domain.gain * np.sqrt(np.mean(harmonics**2) + 0.05)  # class-independent noise level
    noise = ref / (10 ** (domain.snr_db / 20)) * rng.standard_normal(n)
    return clean + noise


def simulate_domain(
    domain: DomainSpec | str,
    domain_index: int = 0,
    classes: Sequence[str] = CLASSES_4,
    recordings_per_class: int = 4,
    windows_per_recording: int = 20,
    window: int = 2048,
    fs: float = 12000.0,
    seed: int = 0,
    tier: str = "hard",
) -> BearingData:
    """Simulate `recordings_per_class` recordings per class in `domain` and cut them into windows.

    `domain` is a :class:`DomainSpec` or the name of one in ``DOMAIN_TIERS[tier]``. Fault classes
    without a size suffix draw a severity in [0.6, 1.4] per recording.
    """
    if isinstance(domain, str):
        if tier not in DOMAIN_TIERS:
            raise ValueError(f"tier must be one of {sorted(DOMAIN_TIERS)}, got {tier!r}")
        names = [d.name for d in DOMAIN_TIERS[tier]]
        if domain not in names:
            raise ValueError(f"domain {domain!r} is not in tier {tier!r}: {names}")
        domain = DOMAIN_TIERS[tier][names.index(domain)]
    _check_window(window)
    classes = tuple(classes)
    if not classes:
        raise ValueError("classes must not be empty")
    for c in classes:
        _parse_class(c)
    if recordings_per_class < 1 or windows_per_recording < 1:
        raise ValueError(
            "recordings_per_class and windows_per_recording must be >= 1, got "
            f"{recordings_per_class!r}, {windows_per_recording!r}"
        )
    rng = np.random.default_rng([seed, domain_index, 7919])
    xs, ys, recs = [], [], []
    seconds = window * windows_per_recording / fs
    for ci, c in enumerate(classes):
        for r in range(recordings_per_class):
            sev = rng.uniform(0.6, 1.4) if "_" not in c and c != "normal" else None
            sig = simulate_recording(c, domain, seconds, fs, severity=sev, rng=rng)
            w = sig[: window * windows_per_recording].reshape(windows_per_recording, window)
            xs.append(w)
            ys.append(np.full(windows_per_recording, ci))
            recs.append(np.full(windows_per_recording, ci * recordings_per_class + r))
    x = np.concatenate(xs).astype(np.float32)
    nwin = len(x)
    return BearingData(
        x=x,
        y=np.concatenate(ys).astype(np.int64),
        domain=np.full(nwin, domain_index, dtype=np.int64),
        recording=np.concatenate(recs).astype(np.int64) + 100000 * domain_index,
        rpm=np.full(nwin, domain.shaft_rpm, dtype=np.float64),
        fs=fs,
        classes=classes,
    )


def simulate_run_to_failure(
    fault: str,
    domain: DomainSpec,
    n_recordings: int = 20,
    seconds: float = 1.0,
    fs: float = 12000.0,
    start_severity: float = 0.05,
    end_severity: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A run-to-failure sequence in the style of the IMS data set: `n_recordings` snapshots of
    `seconds` each, taken at equal intervals while a `fault` grows.

    Severity grows exponentially (the usual degradation model of spall growth), from
    `start_severity` to `end_severity`: sev_k = start * (end / start)^(k / (n - 1)).
    Returns (recordings (n_recordings, seconds * fs) float64, severities (n_recordings,)).
    """
    loc, _ = _parse_class(fault)
    if loc == "normal":
        raise ValueError("fault must be 'inner', 'ball' or 'outer' for a run to failure")
    if isinstance(n_recordings, bool) or not isinstance(n_recordings, int) or n_recordings < 2:
        raise ValueError(f"n_recordings must be an int >= 2, got {n_recordings!r}")
    if not 0 < start_severity < end_severity:
        raise ValueError(
            f"need 0 < start_severity < end_severity, got {start_severity!r}, {end_severity!r}"
        )
    rng = np.random.default_rng([seed, 31337])
    k = np.arange(n_recordings) / (n_recordings - 1)
    sev = start_severity * (end_severity / start_severity) ** k
    recs = np.stack(
        [simulate_recording(fault, domain, seconds, fs, severity=v, rng=rng) for v in sev]
    )
    return recs, sev


def split_by_recording(
    data: BearingData, test_fraction: float = 0.5, seed: int = 0
) -> tuple[BearingData, BearingData]:
    """Split into (train, test) by whole recordings, stratified by class.

    Every class keeps at least one recording on each side when it has two or more.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(data), dtype=bool)
    for c in np.unique(data.y):
        recs = np.unique(data.recording[data.y == c])
        if len(recs) < 2:
            raise ValueError(
                f"class {data.classes[c]!r} has {len(recs)} recording(s); a split by recording "
                "needs >= 2 per class"
            )
        k = min(len(recs) - 1, max(1, int(round(test_fraction * len(recs)))))
        chosen = rng.choice(recs, size=k, replace=False)
        test |= np.isin(data.recording, chosen)
    return data.subset(~test), data.subset(test)


def transfer_tasks(n_domains: int = 4) -> list[tuple[int, int]]:
    """All ordered source -> target pairs i -> j, i != j (12 for four conditions)."""
    return [(i, j) for i in range(n_domains) for j in range(n_domains) if i != j]


def envelope_order_spectrum(
    x: np.ndarray,
    fs: float,
    rpm: float | np.ndarray,
    orders: np.ndarray | None = None,
    highpass_hz: float = 1000.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Order-normalised envelope spectrum of windows `x` (N, L) or one signal (L,).

    High-pass (removes shaft harmonics), Hilbert envelope, remove its mean, |FFT| and read it at
    `orders` (multiples of the shaft frequency rpm / 60) by linear interpolation. Returns
    (orders, spectrum) with spectrum shape (N, len(orders)) or (len(orders),).
    """
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 1
    x2 = x[None] if single else x
    if x2.ndim != 2:
        raise ValueError(f"x must be 1-D or 2-D, got shape {x.shape}")
    if orders is None:
        orders = np.arange(0.5, 12.0, 0.05)
    sos = sps.butter(4, highpass_hz, "highpass", fs=fs, output="sos")
    # scipy's default edge padding (3 x filter taps), shortened for windows shorter than it
    taps = 2 * len(sos) + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    padlen = min(3 * taps, x2.shape[1] - 1)
    env = np.abs(sps.hilbert(sps.sosfiltfilt(sos, x2, axis=1, padlen=padlen), axis=1))
    env = env - env.mean(axis=1, keepdims=True)
    nfft = max(x2.shape[1], 8192)
    spec = np.abs(np.fft.rfft(env * np.hanning(x2.shape[1]), n=nfft, axis=1)) / x2.shape[1]
    freqs = np.fft.rfftfreq(nfft, 1 / fs)
    fr = np.broadcast_to(np.asarray(rpm, dtype=np.float64) / 60.0, (x2.shape[0],))
    out = np.stack([np.interp(orders * fr[i], freqs, spec[i]) for i in range(x2.shape[0])])
    return orders, (out[0] if single else out)


#: Order grid of :func:`order_envelope_segments` (0.5 to 12.4 in steps of 0.1: 120 bins).
SEGMENT_ORDERS: np.ndarray = np.round(0.5 + 0.1 * np.arange(120), 10)

#: Input representations every neural method can be given (see :func:`apply_front_end`).
FRONT_ENDS: tuple[str, ...] = ("raw", "order-envelope")


def order_envelope_segments(
    x: np.ndarray,
    fs: float,
    rpm: float | np.ndarray,
    n_segments: int,
    orders: np.ndarray | None = None,
    highpass_hz: float = 1000.0,
) -> np.ndarray:
    """Per-segment log envelope order spectra of windows `x` (N, L): shape (N, T * len(orders)).

    The "order-envelope" front end (standard envelope analysis plus order normalisation by the
    known shaft speed, as in :class:`cdhm.PhysicsReference`, but kept per segment so the T steps
    of the sequence model remain). Each window is high-passed at `highpass_hz` (removes the shaft
    harmonics), its Hilbert envelope is cut into T = `n_segments` consecutive segments, and each
    segment gives log(|FFT(envelope - mean)| / mean + 1e-3) read at `orders` of the shaft
    frequency rpm / 60 (default :data:`SEGMENT_ORDERS`). The result is flat (T blocks of
    len(orders) values) so every estimator cuts it back into the same T segments.

    Needs the shaft speed of every window (the working condition is known in this setting) and
    segments of several revolutions for the order resolution (about 1 / revolutions per segment).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n_windows, window_length), got shape {x.shape}")
    _check_window(x.shape[1], n_segments)
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN/inf values; clean the signals first")
    if fs <= 0 or not 0 < highpass_hz < fs / 2:
        raise ValueError(f"need fs > 0 and 0 < highpass_hz < fs / 2, got {fs!r}, {highpass_hz!r}")
    orders = SEGMENT_ORDERS if orders is None else np.asarray(orders, dtype=np.float64)
    rpm_arr = np.broadcast_to(np.asarray(rpm, dtype=np.float64), (x.shape[0],))
    if not np.all(rpm_arr > 0):
        raise ValueError(f"rpm must be > 0 for every window, got min {rpm_arr.min()!r}")
    sos = sps.butter(4, highpass_hz, "highpass", fs=fs, output="sos")
    env = np.abs(sps.hilbert(sps.sosfiltfilt(sos, x, axis=1), axis=1))
    d = x.shape[1] // n_segments
    seg = env.reshape(x.shape[0], n_segments, d)
    seg = seg - seg.mean(axis=2, keepdims=True)
    nfft = max(d, 4096)
    spec = np.abs(np.fft.rfft(seg * np.hanning(d), n=nfft, axis=2))
    spec = spec / (spec.mean(axis=2, keepdims=True) + 1e-12)
    freqs = np.fft.rfftfreq(nfft, 1 / fs)
    fr = rpm_arr / 60.0
    out = np.empty((x.shape[0], n_segments, len(orders)))
    for i in range(x.shape[0]):
        f = orders * fr[i]
        for t in range(n_segments):
            out[i, t] = np.interp(f, freqs, spec[i, t])
    return np.log(out + 1e-3).reshape(x.shape[0], -1).astype(np.float32)


def apply_front_end(
    data: BearingData, front_end: str, n_segments: int, **kwargs: object
) -> BearingData:
    """`data` with its windows replaced by the input representation `front_end`.

    'raw' returns `data` unchanged (waveform segments); 'order-envelope' applies
    :func:`order_envelope_segments` with the recorded shaft speeds. Benchmarks give every
    neural method the same front end.
    """
    if front_end not in FRONT_ENDS:
        raise ValueError(f"front_end must be one of {FRONT_ENDS}, got {front_end!r}")
    if front_end == "raw":
        return data
    x = order_envelope_segments(data.x, data.fs, data.rpm, n_segments, **kwargs)  # type: ignore[arg-type]
    return replace(data, x=x)


from cdhm.cwru import (  # noqa: E402  (re-exported: the CWRU reader lives in cdhm.cwru)
    CWRU_FILES,
    CWRU_RPM,
    cwru_transfer_tasks,
    load_cwru,
)
