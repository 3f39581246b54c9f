"""Reporting: statistics, tables, JSON round-trip, figures."""

import json

import numpy as np
import pytest
from maskloop import report


def test_mean_std_and_format() -> None:
    m, s = report.mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)
    assert report.mean_std([5.0]) == (5.0, 0.0)
    assert report.format_mean_std([0.9, 0.92], digits=1, scale=100) == "91.0 ± 1.4"
    with pytest.raises(ValueError, match="NaN"):
        report.mean_std([1.0, float("nan")])


def test_paired_difference_ci_brackets_mean() -> None:
    a = [0.9, 0.91, 0.93, 0.92, 0.95]
    b = [0.88, 0.9, 0.9, 0.91, 0.9]
    d = report.paired_difference(a, b)
    assert d.mean == pytest.approx(np.mean(np.subtract(a, b)))
    assert d.low <= d.mean <= d.high and d.low > 0 and d.n == 5
    with pytest.raises(ValueError, match="pair up"):
        report.paired_difference([1, 2], [1])


def make_results() -> report.Results:
    res = report.Results("demo", "demo bench --quick", {"epochs": 3})
    for seed in range(3):
        for sp in (0.5, 0.9):
            res.add("base", seed, {"acc": 0.8 - sp / 10 + seed / 100}, sparsity=sp)
            res.add("ours", seed, {"acc": 0.85 - sp / 10 + seed / 100}, sparsity=sp)
    return res


def test_table_and_roundtrip(tmp_path) -> None:
    res = make_results()
    table = res.table("acc", baseline="base", scale=100)
    assert "| sparsity | method | n | acc | Δ vs base [95% CI] |" in table
    assert "+5.00 [+5.00, +5.00]" in table
    path = res.save(tmp_path / "r.json")
    doc = json.loads(path.read_text())
    assert doc["schema"] == "maskloop.results/1" and len(doc["records"]) == 12
    again = report.Results.load(path)
    assert again.table("acc", baseline="base") == res.table("acc", baseline="base")
    with pytest.raises(ValueError, match="baseline"):
        res.table("acc", baseline="nope")
    with pytest.raises(ValueError, match="finite"):
        res.add("x", 0, {"acc": float("nan")})


def test_write_report_plot_and_demo_summary(tmp_path) -> None:
    res = make_results()
    md = report.write_report(tmp_path / "out.md", "Demo", [res.table("acc")], results=res)
    assert md.read_text().startswith("# Demo")
    assert (tmp_path / "out.json").is_file()
    png = report.plot_metric(res, "acc", "sparsity", tmp_path / "out.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert int.from_bytes(png.read_bytes()[16:20], "big") == 720  # 6 in at 120 dpi
    many = report.Results("demo", "cmd")
    for i in range(8):  # more lines than colours: markers differ, legend beside the axes
        many.add(f"m{i}", 0, {"acc": 0.5 + i / 100}, sparsity=0.5)
    wide = report.plot_metric(many, "acc", "sparsity", tmp_path / "many.png")
    assert int.from_bytes(wide.read_bytes()[16:20], "big") == 1020
    many.add("dense", 0, {"acc": 0.9}, sparsity=0.0)
    report.plot_metric(many, "acc", "sparsity", tmp_path / "ref.png", reference="dense")
    with pytest.raises(ValueError, match="reference 'full'"):
        report.plot_metric(many, "acc", "sparsity", tmp_path / "x.png", reference="full")
    s = report.write_demo_summary(tmp_path / "s.json", "demo", "x", "acc 0.9", 1.234)
    doc = json.loads(s.read_text())
    assert doc["seconds"] == 1.23 and doc["beat_baseline"] is None
    s = report.write_demo_summary(
        tmp_path / "b.json", "demo", "x", "acc 0.9", 1.0, baseline="random", beat_baseline=False
    )
    doc = json.loads(s.read_text())
    assert (doc["baseline"], doc["beat_baseline"]) == ("random", False)
    with pytest.raises(TypeError, match="beat_baseline"):
        report.write_demo_summary(tmp_path / "c.json", "demo", "x", "h", 1.0, beat_baseline=1)


def test_markdown_table_checks_rows() -> None:
    with pytest.raises(ValueError, match="row 0"):
        report.markdown_table(["a", "b"], [[1]])
