"""Bad input: every malformed CWRU file, argument or array gets a ValueError/TypeError naming it."""

import numpy as np
import pytest
from cdhm import CWRU_FILES, load_cwru
from cdhm.cwru import read_cwru_file, write_cwru_files
from scipy.io import savemat


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cwru_good")
    write_cwru_files(root, seconds=0.5, seed=0)
    return root


def _copy(good_dir, tmp_path):
    for f in good_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    return tmp_path


def _load(root):
    return load_cwru(root, window=256, chunks_per_file=2)


def test_good_dir_loads(good_dir):
    """load_cwru: the generator's files load (the reference for every bad case below)."""
    d = _load(good_dir)
    assert len(d) > 0 and set(d.domain) == {0, 1, 2, 3}


def test_missing_drive_end_key(good_dir, tmp_path):
    """load_cwru: a file without its X<nnn>_DE_time variable."""
    root = _copy(good_dir, tmp_path)
    savemat(root / "118.mat", {"X118_FE_time": np.ones((6000, 1)), "X118RPM": 1797})
    with pytest.raises(
        ValueError, match=r"118\.mat: no drive-end variable 'X118_DE_time'.*X118_FE_time"
    ):
        _load(root)


def test_non_numeric_signal(good_dir, tmp_path):
    """load_cwru: a drive-end variable holding text."""
    root = _copy(good_dir, tmp_path)
    savemat(root / "130.mat", {"X130_DE_time": np.array(["not a signal"])})
    with pytest.raises(ValueError, match=r"130\.mat: X130_DE_time is not a numeric signal"):
        _load(root)


def test_cell_array_signal(good_dir, tmp_path):
    """load_cwru: a drive-end variable that is a cell array (object dtype)."""
    root = _copy(good_dir, tmp_path)
    savemat(root / "130.mat", {"X130_DE_time": np.array([1.0, "a"], dtype=object)})
    with pytest.raises(ValueError, match=r"130\.mat: X130_DE_time is not a numeric signal"):
        _load(root)


def test_empty_signal(good_dir, tmp_path):
    """load_cwru: an empty drive-end signal."""
    root = _copy(good_dir, tmp_path)
    savemat(root / "105.mat", {"X105_DE_time": np.zeros((0, 1))})
    with pytest.raises(ValueError, match=r"105\.mat: X105_DE_time is empty"):
        _load(root)


def test_matrix_signal(good_dir, tmp_path):
    """load_cwru: a drive-end variable with two channels."""
    root = _copy(good_dir, tmp_path)
    savemat(root / "105.mat", {"X105_DE_time": np.ones((6000, 2))})
    with pytest.raises(ValueError, match=r"105\.mat: X105_DE_time must be a vector"):
        _load(root)


def test_nan_signal(good_dir, tmp_path):
    """load_cwru: NaN in a drive-end signal."""
    root = _copy(good_dir, tmp_path)
    sig = np.ones((6000, 1))
    sig[10] = np.nan
    savemat(root / "105.mat", {"X105_DE_time": sig})
    with pytest.raises(ValueError, match=r"105\.mat: X105_DE_time contains 1 NaN/inf"):
        _load(root)


def test_not_a_mat_file(good_dir, tmp_path):
    """load_cwru: a text file named <number>.mat."""
    root = _copy(good_dir, tmp_path)
    (root / "106.mat").write_text("time,amplitude\n0,0.1\n" * 50)
    with pytest.raises(ValueError, match=r"106\.mat: not a readable MAT file"):
        _load(root)


@pytest.mark.parametrize("keep", [10, 100, 200, 0.5], ids=["10B", "100B", "200B", "half"])
def test_truncated_mat_file(good_dir, tmp_path, keep):
    """load_cwru: a MAT file cut short."""
    root = _copy(good_dir, tmp_path)
    raw = (root / "107.mat").read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else keep
    (root / "107.mat").write_bytes(raw[:n])
    with pytest.raises(ValueError, match=r"107\.mat: not a readable MAT file"):
        _load(root)


def test_inconsistent_sampling_rate(good_dir, tmp_path):
    """load_cwru: a file whose sampling-rate variable differs from the set's 12 kHz."""
    root = _copy(good_dir, tmp_path)
    savemat(root / "169.mat", {"X169_DE_time": np.ones((6000, 1)), "X169_fs": 48000.0})
    with pytest.raises(
        ValueError,
        match=r"169\.mat: sampling rate X169_fs=48000 Hz is inconsistent with the 12000 Hz",
    ):
        _load(root)


def test_normal_file_at_12k_claimed(good_dir, tmp_path):
    """load_cwru: a normal baseline claiming 12 kHz (the set's normal files are 48 kHz)."""
    root = _copy(good_dir, tmp_path)
    savemat(root / "97.mat", {"X097_DE_time": np.ones((24000, 1)), "fs": 12000})
    with pytest.raises(
        ValueError, match=r"97\.mat: sampling rate fs=12000 Hz is inconsistent with the 48000 Hz"
    ):
        _load(root)


def test_window_longer_than_signal(good_dir):
    """load_cwru: windows longer than the signals."""
    with pytest.raises(
        ValueError, match=r"too short for 2 chunks of at least one 8192-sample window"
    ):
        load_cwru(good_dir, window=8192, chunks_per_file=2)


def test_missing_file(good_dir, tmp_path):
    """load_cwru: a file of the set is missing."""
    root = _copy(good_dir, tmp_path)
    (root / "222.mat").unlink()
    with pytest.raises(ValueError, match=r"222\.mat: missing \(ball_021, load 0 hp\)"):
        _load(root)


def test_reports_every_bad_file_at_once(good_dir, tmp_path):
    """load_cwru: several bad files are all named in one error and nothing is loaded."""
    root = _copy(good_dir, tmp_path)
    savemat(root / "118.mat", {"X118_FE_time": np.ones((6000, 1))})
    (root / "106.mat").write_text("garbage")
    savemat(root / "105.mat", {"X105_DE_time": np.zeros((0, 1))})
    (root / "237.mat").unlink()
    with pytest.raises(ValueError, match=r"^4 bad CWRU file\(s\)") as info:
        _load(root)
    msg = str(info.value)
    for name in ("105.mat", "106.mat", "118.mat", "237.mat"):
        assert name in msg


def test_root_not_a_directory(tmp_path):
    """load_cwru: a root that does not exist."""
    with pytest.raises(ValueError, match="is not a directory"):
        load_cwru(tmp_path / "nope")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loads": (7,)}, "load 7 is not a CWRU load"),
        ({"loads": ()}, "at least one CWRU load"),
        ({"window": 8}, "window must be an int >= 16"),
        ({"chunks_per_file": 1}, "chunks_per_file must be >= 2"),
        ({"max_windows_per_file": 0}, "max_windows_per_file must be None or an int >= 1"),
    ],
    ids=["load", "no-loads", "window", "chunks", "max-windows"],
)
def test_bad_arguments(good_dir, kwargs, match):
    """load_cwru: out-of-range arguments."""
    with pytest.raises(ValueError, match=match):
        load_cwru(good_dir, **kwargs)


def test_read_cwru_file_hdf5_like(tmp_path):
    """read_cwru_file: a non-MAT binary file."""
    p = tmp_path / "105.mat"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(600))
    with pytest.raises(ValueError, match=r"105\.mat: .*MAT"):
        read_cwru_file(p, 105, 12000.0)


def test_read_cwru_file_neighbour_key(tmp_path):
    """read_cwru_file: the only DE variable has a neighbouring number (as in real file 174)."""
    p = tmp_path / "174.mat"
    savemat(p, {"X173_DE_time": np.arange(10.0)[:, None]})
    np.testing.assert_array_equal(read_cwru_file(p, 174), np.arange(10.0))
    assert len(CWRU_FILES) == 10
