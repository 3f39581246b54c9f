"""Session 34: session 33's `teacher_snapshots` retired (the neutral value still loads, others
raise naming the last commit with the code), and the host each cached unit is trained on
(`lnpt.runtime.host_id`, recorded by `lnpt.bench.Progress`; a resume that mixes hosts warns).
No training, no timing."""

import json
import warnings
from pathlib import Path

import lnpt
import lnpt.bench as bench
import lnpt.runtime as runtime
import pytest
import torch
from lnpt.training import TRAINING_DEFAULTS

# --------------------------------------------------------------------------- the retirement


def test_the_retired_option_at_its_neutral_value_still_runs(monkeypatch):
    """An old config naming `teacher_snapshots=1` checks and trains as one without it: the option
    never reaches the trainer, the final teacher is the one trained against."""
    seen = {}

    class Fake:
        def __init__(self, student, teacher, mask, **kwargs):
            seen.update(kwargs, teacher=teacher)

        def fit(self, *args, **kwargs):
            return None

    monkeypatch.setattr(bench, "LabelFreeTrainer", Fake)
    old = bench.BenchConfig(label_free={**TRAINING_DEFAULTS, "teacher_snapshots": 1})
    old.check()
    data = bench.MODELS["mlp"].data(0)
    t = torch.nn.Linear(1, 1)
    bench.train_label_free(torch.nn.Linear(1, 1), t, data, 1, old, 0, None)
    with_old = dict(seen)
    seen.clear()
    bench.train_label_free(torch.nn.Linear(1, 1), t, data, 1, bench.BenchConfig(), 0, None)
    assert with_old == seen and seen["teacher"] is t
    assert "teacher_snapshots" not in seen and "target_snapshots" not in seen
    assert bench.without_retired_label_free({"teacher_snapshots": 1, "kd_weight": 1.0}) == {
        "kd_weight": 1.0
    }


@pytest.mark.parametrize("value", [3, 2, 0, -1, True, 1.0, "1", None])
def test_the_retired_option_at_any_other_value_names_the_commit(value, monkeypatch):
    cfg = bench.BenchConfig(label_free={**TRAINING_DEFAULTS, "teacher_snapshots": value})
    with pytest.raises(ValueError, match=r"teacher_snapshots=.* was retired.*commit 7b1d953"):
        cfg.check()
    monkeypatch.setattr(bench, "LabelFreeTrainer", None)  # never reached
    data = bench.MODELS["mlp"].data(0)
    with pytest.raises(ValueError, match="teacher_snapshots"):
        bench.train_label_free(torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), data, 1, cfg, 0, None)


def test_the_label_free_config_must_be_a_dict():
    with pytest.raises(TypeError, match="label_free must be a dict"):
        bench.without_retired_label_free([("teacher_snapshots", 1)])
    with pytest.raises(TypeError, match="label_free must be a dict"):
        bench.BenchConfig(label_free=None).check()


def test_the_learning_gap_has_no_snapshot_targets_any_more():
    torch.manual_seed(0)
    student, teacher = lnpt.MLP(8, (16,), 3), lnpt.MLP(8, (16,), 3)
    with pytest.raises(TypeError, match="target_snapshots"):
        lnpt.LearningGap(student, teacher, target_snapshots=[teacher])
    assert not hasattr(lnpt.LearningGap, "snapshot_logits")
    assert "teacher_snapshots" not in TRAINING_DEFAULTS
    assert bench.RETIRED_LABEL_FREE == {"teacher_snapshots": (1, "7b1d953")}


def test_the_default_keys_do_not_name_the_retired_option():
    """Committed keys never held the option at its neutral value (it was absent), so nothing is
    pinned: the test caches' fingerprints are the committed ones."""
    cfg = bench.BenchConfig()
    assert "teacher_snapshots" not in json.dumps(cfg.key_dict())
    assert cfg.fingerprint("mlp") == "2cea280fb19f115a"
    assert cfg.fingerprint("cnn1d") == "88503d026bf2f606"


# --------------------------------------------------------------------------- the host record


def test_host_id_names_platform_cpu_torch_and_the_dispatch(tmp_path):
    h = runtime.host_id()
    assert h == runtime.host_id()
    parts = h.split(" | ")
    assert len(parts) == 4 and parts[2] == f"torch {torch.__version__}"
    assert parts[3] == torch.backends.cpu.get_cpu_capability()
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        "stepping\t: 1\n\nprocessor\t: 1\nvendor_id\t: Other\n"
    )
    assert runtime._cpu_model(info) == "AuthenticAMD family 25 model 17 stepping 1"
    assert runtime._cpu_model(tmp_path / "missing")  # falls back, never raises


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_progress_records_the_host_and_keeps_key_and_value(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "host_id", lambda: "host A")
    path = tmp_path / "u.jsonl"
    p = bench.Progress(path, resume=False, deadline=None)
    p.put("0.95/snip+supervised", [{"metrics": {"val_accuracy": 0.9}}])
    assert _lines(path) == [
        {"key": "0.95/snip+supervised", "value": [{"metrics": {"val_accuracy": 0.9}}],
         "host": "host A"}
    ]  # fmt: skip
    again = bench.Progress(path, resume=True, deadline=None)
    assert again.done == p.done and again.hosts == {"0.95/snip+supervised": "host A"}
    assert again.other_hosts() == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same host: adding units is silent
        again.put("0.95/snip+label-free", [])


def test_a_resume_that_adds_units_to_another_hosts_cache_warns_once(tmp_path, monkeypatch):
    path = tmp_path / "u.jsonl"
    path.write_text(
        json.dumps({"key": "a", "value": [1]})  # made before session 34: no host recorded
        + "\n"
        + json.dumps({"key": "b", "value": [2], "host": "host B"})
        + "\n"
    )
    monkeypatch.setattr(bench, "host_id", lambda: "host A")
    p = bench.Progress(path, resume=True, deadline=None)
    assert p.done == {"a": [1], "b": [2]}
    assert p.other_hosts() == {"a": None, "b": "host B"}
    with pytest.warns(bench.HostMixWarning, match=r"2 cached units of another host \(1 with no"):
        p.put("c", [3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.put("d", [4])  # once per cache
    assert [d.get("host") for d in _lines(path)] == [None, "host B", "host A", "host A"]


def test_a_resume_that_adds_nothing_and_a_fresh_run_stay_silent(tmp_path, monkeypatch):
    path = tmp_path / "u.jsonl"
    path.write_text(json.dumps({"key": "a", "value": [1], "host": "host B"}) + "\n")
    monkeypatch.setattr(bench, "host_id", lambda: "host A")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = bench.Progress(path, resume=True, deadline=None)
        p.check()
        assert p.done == {"a": [1]} and p.new == 0
        fresh = bench.Progress(path, resume=False, deadline=None)  # starts over: one host
        fresh.put("a", [5])
    assert _lines(path) == [{"key": "a", "value": [5], "host": "host A"}]


# --------------------------------------------------------------------------- the drift record


def test_the_drift_record_matches_the_committed_inputs():
    """`docs/benchmarks/lnpt_s34_cache_drift.json` (`scripts/cache_drift_s34.py`): its drifted
    units are exactly the unequal rows of session 33's `mlp_check.json`, their committed values
    are the committed cache's, every one is label-free, and both bisection end points trained the
    same students (equal hashes) that read differently from the committed units."""
    root = Path(__file__).resolve().parents[3] / "docs/benchmarks"
    doc = json.loads((root / "lnpt_s34_cache_drift.json").read_text())
    check = json.loads((root / "lnpt_s33_flush/mlp_check.json").read_text())
    full = [r for r in check["rows"] if r["kind"].startswith("MLP all committed variants")]
    assert [d["unit"] for d in doc["drifted"]] == [r["unit"] for r in full if not r["equal"]]
    cache = {
        d["key"]: d["value"][0]["metrics"]["val_accuracy"]
        for d in _lines(root / "cache/ablation-mlp-seed0-7482807558d2a2d6.jsonl")
    }
    assert len(cache) == doc["seed 0 units compared"] == 14
    for d in doc["drifted"]:
        assert cache[d["unit"]] == d["committed"] != d["today's host"]
        assert d["unit"].endswith("+label-free") or "+label-free#" in d["unit"]
    assert doc["drifted label-free / supervised"] == [7, 0]
    b = doc["bisect"]
    old, new = b["004e879"], b["lnpt-34 (7b1d953 + the retirement)"]
    assert old == new
    committed = [cache[u] for u in b["arms"]]
    assert sum(x != y for x, y in zip(committed, old["val_accuracy"], strict=True)) == 3
    assert doc["decision committed"] == doc["decision with today's seed 0"]
    assert doc["decision changed"] is False
