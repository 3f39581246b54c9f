"""CLI smoke tests: the demo runs and writes its summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lrcnn.bench import _configs
from lrcnn.cli import CACHE_NAME, build_parser, main
from maskloop.testing import options_without_help, relative_links


def test_demo_writes_summary(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--summary-json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "two_phase-4" in out and "plain" in out
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["package"] == "lrcnn" and "saved-for-backward" in doc["headline"]
    assert doc["baseline"] == "checkpoint_sequential" and isinstance(doc["beat_baseline"], bool)


def test_bench_configs_compare_all_methods() -> None:
    for quick in (True, False):
        cfgs = _configs(quick)
        works = {(c["model"], c["res"], c["batch"]) for c in cfgs}
        for work in works:
            mine = [c for c in cfgs if (c["model"], c["res"], c["batch"]) == work]
            for group in ("trunk", "step"):
                grp = [c for c in mine if c["group"] == group]
                # plain (not fused) first: the reference of the group's ratios
                assert grp and grp[0]["method"] == "plain" and not grp[0].get("fused")
            key = {
                (c["method"], c.get("rows"), c.get("ckpt", False), c.get("fused", False))
                for c in mine
            }
            assert ("checkpoint", None, False, False) in key
            assert ("plain", None, False, True) in key and ("checkpoint", None, False, True) in key
            rc = {k for k in key if k[1] is not None and not k[3]}
            assert {k[0] for k in rc} == {"overlap", "two_phase"}
            assert any(k[1] is not None and k[3] for k in key)  # row-centric + fused
            if not quick:
                assert any(k[1] is not None and k[2] for k in key)  # row-centric + ckpt
            if work[0] == "resnet50":
                assert any(c.get("bn") == "frozen" for c in mine)
    full = _configs(False)
    # the chunk group: its own plain reference first, overlap-8+fused beside the chunked rows
    chunk = [c for c in full if c["group"] == "chunk"]
    assert {(c["model"], c["res"], c["batch"]) for c in chunk} == {("vgg16", 224, 8)}
    assert chunk[0]["method"] == "plain" and not chunk[0].get("fused")
    assert any(c.get("fused") and not c.get("chunk_mib") for c in chunk)
    assert sum(1 for c in chunk if c.get("fused") and c.get("chunk_mib")) == 2
    assert not any(c["group"] == "chunk" for c in _configs(True))
    # the setting: VGG-16 / ResNet-50 at 224x224 batch 8, and a high resolution
    assert {(c["model"], c["res"], c["batch"]) for c in full} >= {
        ("vgg16", 224, 8),
        ("resnet50", 224, 8),
        ("vgg16", 512, 1),
        ("resnet50", 512, 1),
    }


def test_bench_batch_replaces_the_224_batch_and_is_checked(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """--batch N: the 224x224 workloads at batch N (the GPU setting, 32), 512x512 kept at 1, no
    chunk group away from batch 8; the report's command names it; a bad batch is a ValueError."""
    import lrcnn.bench

    gpu = _configs(False, 32)
    assert {(c["model"], c["res"], c["batch"]) for c in gpu} == {
        ("vgg16", 224, 32),
        ("resnet50", 224, 32),
        ("vgg16", 512, 1),
        ("resnet50", 512, 1),
    }
    assert not any(c["group"] == "chunk" for c in gpu)
    # the same methods as at batch 8, group by group
    strip = [
        {k: v for k, v in c.items() if k != "batch"} for c in _configs(False) if c["res"] == 224
    ]
    strip_gpu = [{k: v for k, v in c.items() if k != "batch"} for c in gpu if c["res"] == 224]
    assert strip_gpu == [c for c in strip if c["group"] != "chunk"]
    assert {c["batch"] for c in _configs(True, 4)} == {4}
    for bad in (0, -2, 2.5, True):
        with pytest.raises((ValueError, TypeError), match="batch"):
            lrcnn.bench.run_bench(tmp_path, batch=bad)
    commands: list[str] = []

    def fake(out, **kw):  # type: ignore[no-untyped-def]
        commands.append(f"{kw['command']} / {kw['batch']}")
        return "table"

    monkeypatch.setattr(lrcnn.bench, "run_bench", fake)
    assert main(["bench", "--out", str(tmp_path), "--batch", "32", "--only", "224-32"]) == 0
    assert commands == ["lrcnn bench --threads 1 --batch 32 --only 224-32 / 32"]


def test_version(capsys) -> None:  # type: ignore[no-untyped-def]
    import lrcnn

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == lrcnn.__version__


def test_every_option_has_help() -> None:
    """Every option and sub-command of `lrcnn` has help text; the shared flags are there."""
    parser = build_parser()
    assert options_without_help(parser) == []
    for name in ("demo", "bench"):
        assert {"--seed", "--threads"} <= set(parser.subcommands[name]._option_string_actions)
    own = {
        "--quick",
        "--out",
        "--resume",
        "--seeds",
        "--repeats",
        "--only",
        "--budget-s",
        "--batch",
    }
    assert own <= set(parser.subcommands["bench"]._option_string_actions)
    assert "./lrcnn-bench/" in parser.subcommands["bench"].format_help()
    args = parser.parse_args(["bench"])
    assert (args.out, args.threads, args.resume) == (Path("lrcnn-bench"), 1, False)


def test_bench_resume_reuses_the_cache_in_out(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """bench writes its cache under --out; --resume keeps it, a new run starts it afresh."""
    import lrcnn.bench

    seen: list[tuple[Path, bool]] = []
    commands: list[str] = []

    def fake(out, **kw):  # type: ignore[no-untyped-def]
        seen.append((kw["cache"], kw["cache"].exists()))
        commands.append(kw["command"])
        return "table"

    monkeypatch.setattr(lrcnn.bench, "run_bench", fake)
    cache = tmp_path / CACHE_NAME
    cache.write_text('{"key": "k", "metrics": []}\n')
    assert main(["bench", "--quick", "--out", str(tmp_path), "--resume", "--only", "vgg"]) == 0
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    assert seen == [(cache, True), (cache, False)]
    # the report names the command that produced it, cache use included
    assert commands == [
        "lrcnn bench --quick --threads 1 --resume --only vgg",
        "lrcnn bench --quick --threads 1",
    ]


def test_readme_links_are_absolute() -> None:
    """README links and images must work on PyPI: absolute URLs only (no repository paths)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert relative_links(text) == []


def test_bench_tables_carry_whole_step_predictions(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Rendering (workers replaced by fixed numbers): the whole-step table gets the planner's
    prediction and pred/meas for every row, planner-chosen depths are named, README written."""
    import lrcnn.bench

    def fake_spawn(work, methods):  # type: ignore[no-untyped-def]
        out = []
        for i, c in enumerate(methods):
            auto = c["method"] not in ("plain", "checkpoint") and not c.get("depth")
            out.append(
                {
                    "act_peak_mib": 100.0 - i, "saved_mib": 90.0, "predicted_mib": 101.0,
                    "predicted_time": 1.0, "step_peak_mib": 200.0 - i, "step_fwd_mib": 50.0,
                    "step_head_bwd_mib": 60.0, "step_trunk_bwd_mib": 200.0 - i,
                    "step_opt_mib": 10.0, "static_mib": 500.0, "step_s": 1.0,
                    "time_ratio": 1.0, "time_ratio_std": 0.0, "grad_rel_err": 0.0,
                    "depth": 4.0 if auto else 0.0, "segments": 0.0, "cuda": 0.0,
                }
            )  # fmt: skip
        return out

    monkeypatch.setattr(lrcnn.bench, "_spawn", fake_spawn)
    # the figure needs the [bench] extra (matplotlib), not part of what is tested here
    monkeypatch.setattr(lrcnn.bench, "_plot", lambda res, path: path)
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- lrcnn-bench:start -->\nold\n<!-- lrcnn-bench:end -->\ny\n")
    lrcnn.bench.run_bench(tmp_path, quick=True, only="resnet50", readme=readme, repeats=2)
    text = (tmp_path / "lrcnn.md").read_text()
    step = text.split("## Whole training step")[1].split("![")[0]
    rows = [r for r in step.splitlines() if r.startswith("| resnet50")]
    assert len(rows) == sum(
        1 for c in _configs(True) if c["model"] == "resnet50" and c["group"] == "step"
    ) + sum(1 for c in _configs(True) if c["model"] == "resnet50" and c["group"] == "trunk")
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        pred, ratio = float(cells[6]), float(cells[7])
        assert pred > 0 and ratio == pytest.approx(pred / float(cells[4]), abs=0.01)
    assert "to maxpool (planner)" in text  # the depth the worker reported, named
    assert "old" not in readme.read_text() and "pred/meas" in readme.read_text()
