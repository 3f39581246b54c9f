"""The CWRU load-transfer benchmark: CWRU-format files through `load_cwru`, cache and resume, CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pyro.*")


def _tiny(**kw):
    from cdhm.bench_cwru import CWRUBenchConfig

    base = {
        "tasks": [(0, 1)],
        "seeds": [0],
        "epochs": 2,
        "seconds": 0.5,
        "window": 1024,
        "chunks_per_file": 2,
        "methods": ("CDHM", "source-only"),
    }
    return CWRUBenchConfig(**{**base, **kw})


def test_cwru_bench_quick_reads_written_files_and_resumes(tmp_path, monkeypatch):
    """The tiny variant: files written by write_cwru_files are read back by load_cwru; a run
    stopped by max_minutes leaves a partial report, --resume finishes it, a second resume
    computes nothing and reproduces the same numbers."""
    import cdhm.bench_cwru as bc

    reads, real = [], bc.load_cwru

    def spy(root, **kw):
        reads.append(sorted(p.name for p in Path(root).glob("*.mat")))
        return real(root, **kw)

    monkeypatch.setattr(bc, "load_cwru", spy)
    cfg = _tiny()
    _, text = bc.run_cwru_bench(cfg, out=tmp_path, progress=False, max_minutes=1e-9)
    assert reads == [] and "Partial run: 0 of 1" in (tmp_path / "cdhm_cwru.md").read_text()
    res, text = bc.run_cwru_bench(cfg, out=tmp_path, progress=False, resume=True)
    assert len(reads) == 1 and len(reads[0]) == 40  # 10 classes x 4 loads, CWRU file numbers
    assert "97.mat" in reads[0] and "237.mat" in reads[0]
    md = (tmp_path / "cdhm_cwru.md").read_text()
    assert "All 1 task-seed jobs done" in md and "CDHM − source-only" in md
    assert "read back with `load_cwru`" in md and "| 0→1 |" in md
    for ext in ("json", "png"):
        assert (tmp_path / f"cdhm_cwru.{ext}").exists()
    acc = {r.method: r.metrics["acc_target"] for r in res.records if r.setting["task"] == "0→1"}
    assert set(acc) == {"CDHM", "source-only"} and all(0 <= a <= 1 for a in acc.values())
    cdhm = next(r for r in res.records if r.method == "CDHM")
    assert 0 <= cdhm.metrics["probe_s_domain"] <= 1
    doc = json.loads((tmp_path / "cdhm_cwru.json").read_text())
    assert doc["config"]["benchmark"] == "cwru-load-transfer" and doc["config"]["root"] is None
    res2, _ = bc.run_cwru_bench(cfg, out=tmp_path, progress=False, resume=True)
    assert len(reads) == 1  # everything from the cache: no file written or read
    acc2 = {r.method: r.metrics["acc_target"] for r in res2.records if r.setting["task"] == "0→1"}
    assert acc2 == acc
    assert "0 method runs computed" in (tmp_path / "cdhm_cwru.md").read_text()


def test_cwru_bench_root_reads_the_users_files(tmp_path):
    """With root set, the user's files are read (here: written by the generator), and a bad
    directory fails with load_cwru's ValueError naming the missing files."""
    from cdhm.bench_cwru import _seed_data
    from cdhm.cwru import write_cwru_files

    root = tmp_path / "cwru"
    write_cwru_files(root, seconds=0.5, seed=3)
    raw, fe = _seed_data(_tiny(root=str(root)), seed=0)
    assert sorted(np.unique(raw.domain)) == [0, 1, 2, 3] and len(np.unique(raw.y)) == 10
    assert fe.x.shape[0] == raw.x.shape[0] and fe.x.shape[1] != raw.x.shape[1]
    again, _ = _seed_data(_tiny(root=str(root)), seed=1)  # the same files for every seed
    np.testing.assert_array_equal(raw.x, again.x)
    (root / "105.mat").unlink()
    with pytest.raises(ValueError, match=r"105\.mat: missing"):
        _seed_data(_tiny(root=str(root)), seed=0)


def test_cwru_bench_config_rejects_bad_tasks_and_methods():
    for bad, match in (
        ({"tasks": [(0, 0)]}, "not a CWRU load transfer"),
        ({"tasks": [(0, 4)]}, "not a CWRU load transfer"),
        ({"methods": ("CDHM", "nope")}, "unknown method"),
        ({"methods": ("source-only", "DANN")}, "CDHM and >= 1 baseline"),
        ({"seconds": 0}, "seconds"),
        ({"front_end": "stft"}, "front_end must be one of"),
    ):
        with pytest.raises(ValueError, match=match):
            _tiny(**bad)


def test_cli_bench_cwru_maps_flags(monkeypatch, tmp_path):
    """cdhm bench --cwru [--quick] [--cwru-root DIR] builds the CWRU config and run call."""
    import cdhm.bench_cwru
    from cdhm.bench_cwru import CWRU_QUICK_TASKS
    from cdhm.cli import main
    from cdhm.cwru import cwru_transfer_tasks

    calls = []
    monkeypatch.setattr(
        cdhm.bench_cwru, "run_cwru_bench", lambda **kw: calls.append(kw) or (None, "table")
    )
    assert main(["bench", "--cwru", "--out", str(tmp_path), "--resume", "--max-minutes", "5"]) == 0
    kw = calls[-1]
    assert kw["config"].tasks == cwru_transfer_tasks() and kw["config"].seeds == [0, 1, 2, 3, 4]
    assert kw["resume"] and kw["max_minutes"] == 5 and kw["command"] == "cdhm bench --cwru"
    assert kw["config"].methods == ("CDHM", "source-only", "DANN", "MK-MMD", "Deep CORAL")
    assert main(["bench", "--cwru", "--quick", "--cwru-root", str(tmp_path), "--seeds", "2"]) == 0
    kw = calls[-1]
    assert kw["config"].tasks == list(CWRU_QUICK_TASKS) and kw["config"].seeds == [0, 1]
    assert kw["config"].root == str(tmp_path.resolve())
    assert kw["command"] == f"cdhm bench --cwru --quick --cwru-root {tmp_path} --seeds 2"
    assert main(["bench", "--cwru", "--select"]) == 2 and len(calls) == 2
