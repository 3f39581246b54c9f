"""The CWRU bearing data: a reader for its `.mat` files and a writer of files in the same format.

:func:`load_cwru` reads the Case Western Reserve University 12 kHz drive-end set (10 classes,
motor loads 0-3 hp) from a directory of ``<number>.mat`` files, the way a user with the real
files has them. Every file is checked before anything is loaded; a malformed file (not a MAT
file, truncated, no drive-end variable, a signal that is empty, non-numeric, not a vector or not
finite, a sampling rate that differs from the set's, a signal too short for the windows) raises
one :class:`ValueError` that names every bad file and what is wrong with it.

:func:`write_cwru_files` writes files in the same format from the simulator of
:mod:`cdhm.data` (the "mild" tier, whose four conditions mimic the four CWRU loads), so the
loader path is tested and benchmarked without the real data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import signal as sps

from cdhm.data import CLASSES_10, DOMAIN_TIERS, BearingData, _check_window, simulate_recording

__all__ = [
    "CWRU_FILES",
    "CWRU_FS",
    "CWRU_RPM",
    "cwru_transfer_tasks",
    "load_cwru",
    "read_cwru_file",
    "write_cwru_files",
]

#: Shaft speed per motor load (hp) of the CWRU drive-end data.
CWRU_RPM: dict[int, int] = {0: 1797, 1: 1772, 2: 1750, 3: 1730}

#: Sampling rate (Hz) of each class's files: the normal baselines exist only at 48 kHz.
CWRU_FS: dict[str, float] = {c: (48000.0 if c == "normal" else 12000.0) for c in CLASSES_10}

#: File numbers of the 12 kHz drive-end set per (class, load); outer race at 6 o'clock.
#: The normal baselines (97-100) are recorded at 48 kHz only.
CWRU_FILES: dict[str, tuple[int, int, int, int]] = {
    "normal": (97, 98, 99, 100),
    "inner_007": (105, 106, 107, 108),
    "ball_007": (118, 119, 120, 121),
    "outer_007": (130, 131, 132, 133),
    "inner_014": (169, 170, 171, 172),
    "ball_014": (185, 186, 187, 188),
    "outer_014": (197, 198, 199, 200),
    "inner_021": (209, 210, 211, 212),
    "ball_021": (222, 223, 224, 225),
    "outer_021": (234, 235, 236, 237),
}

#: Names of an optional scalar sampling-rate variable in a file (not in the original CWRU files;
#: converted copies and :func:`write_cwru_files` carry one). When present it must match.
_FS_KEYS = re.compile(r"(?i)(X\d{3}_)?(fs|sampling_rate|sample_rate)")


def read_cwru_file(path: str | Path, number: int, fs: float | None = None) -> np.ndarray:
    """The drive-end signal ``X<number>_DE_time`` of one CWRU `.mat` file, as float64 (n,).

    Raises ValueError naming `path` and the problem: not a MAT file (or MATLAB v7.3/HDF5),
    truncated, no drive-end variable, a signal that is empty, non-numeric, not a vector, or holds
    NaN/inf, or a sampling-rate variable (``fs``, ``sampling_rate``, ``X<nnn>_fs``) that differs
    from `fs`. A file whose only drive-end variable has a neighbouring number (a few real files,
    e.g. 174 -> X173) is accepted.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    try:
        mat = loadmat(str(path))
    except NotImplementedError as err:  # scipy: "Please use HDF reader for matlab v7.3 files"
        raise ValueError(
            f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save it with -v7 ({err})"
        ) from None
    except (MatReadError, ValueError, OSError, IndexError, TypeError, EOFError, KeyError) as err:
        size = path.stat().st_size if path.exists() else 0
        raise ValueError(
            f"{path}: not a readable MAT file ({size} bytes; truncated or another format): "
            f"{type(err).__name__}: {err}"
        ) from None
    except Exception as err:  # scipy's reader raises many types on corrupt bytes
        raise ValueError(f"{path}: not a readable MAT file: {type(err).__name__}: {err}") from None
    key = f"X{number:03d}_DE_time"
    found = sorted(k for k in mat if not k.startswith("__"))
    if key not in mat:
        cands = [k for k in found if re.fullmatch(r"X\d{3}_DE_time", k)]
        if len(cands) != 1:
            raise ValueError(
                f"{path}: no drive-end variable {key!r} (variables found: {found}); "
                "the 12 kHz drive-end set needs X<nnn>_DE_time"
            )
        key = cands[0]
    raw = mat[key]
    if not isinstance(raw, np.ndarray) or raw.dtype == object or raw.dtype.kind not in "biuf":
        kind = raw.dtype if isinstance(raw, np.ndarray) else type(raw).__name__
        raise ValueError(f"{path}: {key} is not a numeric signal (MAT type {kind})")
    if raw.size == 0:
        raise ValueError(f"{path}: {key} is empty (shape {raw.shape})")
    if sum(d > 1 for d in raw.shape) > 1:
        raise ValueError(f"{path}: {key} must be a vector (one channel), got shape {raw.shape}")
    sig = raw.astype(np.float64).ravel()
    bad = int(np.sum(~np.isfinite(sig)))
    if bad:
        raise ValueError(f"{path}: {key} contains {bad} NaN/inf values")
    if fs is not None:
        for k in found:
            if _FS_KEYS.fullmatch(k):
                v = np.asarray(mat[k])
                if v.dtype.kind not in "biuf" or v.size != 1:
                    raise ValueError(f"{path}: sampling-rate variable {k!r} is not a number")
                if not np.isclose(float(v.ravel()[0]), fs, rtol=1e-6):
                    raise ValueError(
                        f"{path}: sampling rate {k}={float(v.ravel()[0]):g} Hz is inconsistent "
                        f"with the {fs:g} Hz this file must have in the CWRU set"
                    )
    return sig


def load_cwru(
    root: str | Path,
    loads: Sequence[int] = (0, 1, 2, 3),
    window: int = 2048,
    chunks_per_file: int = 4,
    max_windows_per_file: int | None = None,
) -> BearingData:
    """Load the CWRU 12 kHz drive-end 10-class set from `root` (files named ``<number>.mat``).

    Windows do not overlap. Each file is cut into `chunks_per_file` contiguous chunks that act as
    recordings, so :func:`cdhm.split_by_recording` keeps whole chunks apart (no window leakage).
    The 48 kHz normal files are low-pass filtered and decimated by 4 to 12 kHz. ``domain`` is the
    load index (0-3 hp); use :func:`cwru_transfer_tasks` for the 12 tasks.

    Every file is read and checked first (see :func:`read_cwru_file`; also missing files and
    signals too short for `chunks_per_file` windows of `window` samples); if any is bad, one
    ValueError lists all of them and nothing is returned.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"CWRU root {str(root)!r} is not a directory")
    _check_window(window)
    loads = list(loads)
    if not loads:
        raise ValueError("loads must name at least one CWRU load (0-3)")
    for ld in loads:
        if isinstance(ld, bool) or ld not in CWRU_RPM:
            raise ValueError(f"load {ld!r} is not a CWRU load; allowed: {sorted(CWRU_RPM)}")
    if isinstance(chunks_per_file, bool) or not isinstance(chunks_per_file, int):
        raise TypeError(f"chunks_per_file must be an int, got {chunks_per_file!r}")
    if chunks_per_file < 2:
        raise ValueError(f"chunks_per_file must be >= 2, got {chunks_per_file!r}")
    if max_windows_per_file is not None and (
        isinstance(max_windows_per_file, bool)
        or not isinstance(max_windows_per_file, int)
        or max_windows_per_file < 1
    ):
        raise ValueError(
            f"max_windows_per_file must be None or an int >= 1, got {max_windows_per_file!r}"
        )
    signals: dict[tuple[int, int], np.ndarray] = {}
    errors: list[str] = []
    for ci, cname in enumerate(CLASSES_10):
        for ld in loads:
            number = CWRU_FILES[cname][ld]
            path = root / f"{number}.mat"
            if not path.is_file():
                errors.append(f"{path}: missing ({cname}, load {ld} hp)")
                continue
            try:
                sig = read_cwru_file(path, number, CWRU_FS[cname])
            except ValueError as err:
                errors.append(str(err))
                continue
            if cname == "normal":
                if len(sig) < 4 * 64:
                    errors.append(f"{path}: {len(sig)} samples at 48 kHz are too few to decimate")
                    continue
                sig = sps.decimate(sig, 4, ftype="fir", zero_phase=True)  # 48 kHz -> 12 kHz
            if len(sig) // chunks_per_file < window:
                errors.append(
                    f"{path}: signal of {len(sig)} samples (at 12 kHz) is too short for "
                    f"{chunks_per_file} chunks of at least one {window}-sample window "
                    f"(needs >= {chunks_per_file * window})"
                )
                continue
            signals[(ci, ld)] = sig
    if errors:
        raise ValueError(
            f"{len(errors)} bad CWRU file(s) in {str(root)!r}; nothing was loaded:\n  "
            + "\n  ".join(errors)
        )
    xs, ys, ds, recs, rpms = [], [], [], [], []
    rec_id = 0
    for (ci, ld), sig in signals.items():
        per_chunk = len(sig) // chunks_per_file // window
        if max_windows_per_file is not None:
            per_chunk = min(per_chunk, max(1, max_windows_per_file // chunks_per_file))
        clen = len(sig) // chunks_per_file
        for k in range(chunks_per_file):
            seg = sig[k * clen : k * clen + per_chunk * window].reshape(per_chunk, window)
            xs.append(seg)
            ys.append(np.full(per_chunk, ci))
            ds.append(np.full(per_chunk, ld))
            recs.append(np.full(per_chunk, rec_id))
            rpms.append(np.full(per_chunk, float(CWRU_RPM[ld])))
            rec_id += 1
    return BearingData(
        x=np.concatenate(xs).astype(np.float32),
        y=np.concatenate(ys).astype(np.int64),
        domain=np.concatenate(ds).astype(np.int64),
        recording=np.concatenate(recs).astype(np.int64),
        rpm=np.concatenate(rpms),
        fs=12000.0,
        classes=CLASSES_10,
    )


def cwru_transfer_tasks() -> list[tuple[int, int]]:
    """The 12 CWRU load-transfer tasks i -> j (i != j, loads 0-3 hp)."""
    return [(i, j) for i in range(4) for j in range(4) if i != j]


def write_cwru_files(
    root: str | Path,
    seconds: float = 2.0,
    seed: int = 0,
    loads: Sequence[int] = (0, 1, 2, 3),
    with_fs: bool = False,
) -> list[Path]:
    """Write simulated recordings as CWRU-format ``<number>.mat`` files into `root`.

    Load i is condition i of the simulator's "mild" tier (1797-1730 rpm like CWRU loads 0-3);
    fault sizes 0.007/0.014/0.021 in set the impact severity. Each file holds the drive-end
    signal ``X<nnn>_DE_time`` (n, 1) and ``X<nnn>RPM`` as in the real set; normal files are
    simulated at 48 kHz, the others at 12 kHz. `with_fs` adds a scalar ``X<nnn>_fs`` variable.
    Returns the written paths. Used by the tests and the CWRU-format benchmark.
    """
    from scipy.io import savemat

    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ValueError(f"seconds must be > 0, got {seconds!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for ci, cname in enumerate(CLASSES_10):
        for ld in loads:
            if ld not in CWRU_RPM:
                raise ValueError(f"load {ld!r} is not a CWRU load; allowed: {sorted(CWRU_RPM)}")
            number = CWRU_FILES[cname][ld]
            rng = np.random.default_rng([seed, ci, ld, 104729])
            fs = CWRU_FS[cname]
            sig = simulate_recording(cname, DOMAIN_TIERS["mild"][ld], seconds, fs, rng=rng)
            data: dict[str, object] = {
                f"X{number:03d}_DE_time": sig[:, None],
                f"X{number:03d}RPM": CWRU_RPM[ld],
            }
            if with_fs:
                data[f"X{number:03d}_fs"] = fs
            path = root / f"{number}.mat"
            savemat(str(path), data)
            out.append(path)
    return out
