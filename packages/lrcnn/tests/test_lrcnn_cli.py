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
    for quick in (True, False):
        cfgs = _configs(quick)
        for model in ("vgg16", "resnet50"):
            for res in {c["res"] for c in cfgs}:
                mine = [c for c in cfgs if c["model"] == model and c["res"] == res]
                methods = {(c["method"], c.get("rows"), c.get("ckpt", False)) for c in mine}
                assert ("plain", None, False) in methods and ("checkpoint", None, False) in methods
                plain_rc = {m for m in methods if m[1] is not None and not m[2]}
                if model == "vgg16":
                    assert len({m[1] for m in plain_rc}) >= 2  # several strip counts
                assert {m[0] for m in plain_rc} == {"overlap", "two_phase"}
                assert any(m[1] is not None and m[2] for m in methods)  # row-centric + ckpt
    full = _configs(False)
    # the setting: VGG-16 / ResNet-50 at 224x224 batch 8, and a high resolution
    assert {(c["model"], c["res"], c["batch"]) for c in full} >= {
        ("vgg16", 224, 8),
        ("resnet50", 224, 8),
        ("vgg16", 512, 1),
        ("resnet50", 512, 1),
    }


def test_version() -> None:
    assert main(["--version"]) == 0
