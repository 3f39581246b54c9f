"""CLI smoke tests: the demo runs and writes its summary."""

from __future__ import annotations

import json
from pathlib import Path

from lrcnn.bench import _configs
from lrcnn.cli import main


def test_demo_writes_summary(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--summary-json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "two_phase-4" in out and "plain" in out
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["package"] == "lrcnn" and "saved-for-backward" in doc["headline"]


def test_bench_configs_compare_all_methods() -> None:
    quick = _configs(True)
    methods = {(c["method"], c.get("rows"), c.get("ckpt", False)) for c in quick}
    assert ("plain", None, False) in methods and ("checkpoint", None, False) in methods
    assert any(m[0] == "overlap" and m[2] for m in methods)
    assert {c["model"] for c in quick} == {"vgg16", "resnet50"}
    assert {c["res"] for c in _configs(False)} == {224, 512}


def test_version() -> None:
    assert main(["--version"]) == 0
