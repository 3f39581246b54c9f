"""Apply the committed rule of session 19's two scoring readings (README) to the finished runs.

Candidates (LNPT label-free students, validation protocol of session 18's `score_epochs` check):
- `mass`: `lnpt bench --student-lr-check --seeds 7 --student-recipes 1e-2,warmup=5
  --student-lr-arms lnpt+label-free --score-allocation mass --out docs/benchmarks/lnpt_score_mass
  --resume` (each round's per-layer budget = the layer's share of the score mass);
- `rounds30`: the same with `--score-rounds 30 --out docs/benchmarks/lnpt_score_rounds30`.
The incumbent: the same students with the default mask (global top-k, 10 rounds), session 17's
cached units (`docs/benchmarks/lnpt_teacher_recipe/cache`, 240 epochs, warm-up 5).

Rule: a candidate qualifies only if all 7 seeds are done, no student reads below 80%, and the
paired Δ (candidate − incumbent, validation accuracy, seeds 0-6, 95% bootstrap CI of
`maskloop.report.paired_difference`) has its lower bound > 0. Of the qualifying candidates the one
with the higher mean Δ is adopted; none qualifying: the default stays. A candidate whose run did not
finish is reported as not run and cannot qualify.

Usage: `python packages/lnpt/scripts/score_variant_rule.py` from the repository root; prints the
table and writes `docs/benchmarks/lnpt_score_variants_rule.json`.

Second family (session 19, later; the same rule, incumbent and protocol, written before its runs):
`python packages/lnpt/scripts/score_variant_rule.py second` reads
- `standardize`: `... --score-standardize --out docs/benchmarks/lnpt_score_standardize --resume`
  (the gap on per-feature standardised penultimate features, `LearningGap(standardize=True)`);
- `avg-scores`: `... --score-average scores --out docs/benchmarks/lnpt_score_average --resume`
  (the mean of the 4 scoring batches' own scores, same 4 x 128 inputs as the default)
and writes `docs/benchmarks/lnpt_score_variants_rule2.json`.

Third family (session 20; the same rule, incumbent and protocol, written before its runs):
`python packages/lnpt/scripts/score_variant_rule.py third` reads
- `layer-mean`: `... --score-norm mean --out docs/benchmarks/lnpt_score_layer_mean --resume`
  (every tensor's scores over their mean before each round's global top-k, `score_norm="mean"`);
- `gap-norm`: `... --score-gap norm --out docs/benchmarks/lnpt_score_gap_norm --resume`
  (the per-sample gap's magnitude instead of its square, `gap="norm"`)
and writes `docs/benchmarks/lnpt_score_variants_rule3.json`.

Fourth family (session 21; the same rule, incumbent and protocol, written before its runs):
`python packages/lnpt/scripts/score_variant_rule.py fourth` reads
- `checkpoints-3`: `... --score-checkpoints 3 --out docs/benchmarks/lnpt_score_checkpoints3 --resume`
  (LNPT's score averaged over 3 snapshots of the teacher's run, epochs 27, 53, 80;
  `lnpt_options={"checkpoints": 3}`; the students still train against the final teacher);
- `checkpoints-5`: `... --score-checkpoints 5 --out docs/benchmarks/lnpt_score_checkpoints5 --resume`
  (5 snapshots, epochs 16, 32, 48, 64, 80)
and writes `docs/benchmarks/lnpt_score_variants_rule4.json`.

Fifth family (session 22; the same rule, incumbent and protocol, written before its runs; SynFlow's
data-free path term brought into the mask, `docs/benchmarks/lnpt_score_synflow_rule.md`):
`python packages/lnpt/scripts/score_variant_rule.py fifth` reads
- `synflow-alloc`: `... --score-allocation synflow --out docs/benchmarks/lnpt_score_synflow_alloc
  --resume` (each round's per-layer kept counts from iterative SynFlow at that round's sparsity,
  each layer's own highest gap scores kept; `lnpt_options={"allocation": "synflow"}`);
- `path-synflow`: `... --score-path synflow --out docs/benchmarks/lnpt_score_path_synflow --resume`
  (each round ranks the gap score times SynFlow's score of the student at the current mask;
  `lnpt_options={"path_term": "synflow"}`)
and writes `docs/benchmarks/lnpt_score_variants_rule5.json`. Validation seeds 0-6 again (the
incumbent's cached units); because ten readings have now been read on these seeds, a candidate
that qualifies here is reported as qualifying on seeds 0-6 only, and the docs recommend a
confirmation on fresh validation seeds 7-13 (candidate and default mask both run) before the
lead changes a default or runs test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from maskloop import report

ROOT = Path("docs/benchmarks")
SEEDS = range(7)  # validation seeds 0-6 (the incumbent units of session 17)
FLOOR = 0.8
INCUMBENT = "lr=0.01,epochs=240,warmup=5"
CANDIDATE = "lr=0.01,warmup=5/lnpt+label-free"
CANDIDATES = {"mass": "lnpt_score_mass", "rounds30": "lnpt_score_rounds30"}
FAMILIES = {
    "first": (CANDIDATES, "lnpt_score_variants_rule.json"),
    "second": (
        {"standardize": "lnpt_score_standardize", "avg-scores": "lnpt_score_average"},
        "lnpt_score_variants_rule2.json",
    ),
    "third": (
        {"layer-mean": "lnpt_score_layer_mean", "gap-norm": "lnpt_score_gap_norm"},
        "lnpt_score_variants_rule3.json",
    ),
    "fourth": (
        {"checkpoints-3": "lnpt_score_checkpoints3", "checkpoints-5": "lnpt_score_checkpoints5"},
        "lnpt_score_variants_rule4.json",
    ),
    "fifth": (
        {"synflow-alloc": "lnpt_score_synflow_alloc", "path-synflow": "lnpt_score_path_synflow"},
        "lnpt_score_variants_rule5.json",
    ),
}
ARMS = ("lnpt+label-free", "snip+supervised", "dense+supervised", "snip+label-free")


def units(folder: Path, seed: int) -> dict[str, dict[str, float]]:
    """Key -> metrics of every finished unit of one seed's cache file under `folder/cache`."""
    files = sorted((folder / "cache").glob(f"student-lr-cnn-seed{seed}-*.jsonl"))
    if len(files) > 1:
        raise SystemExit(f"expected one cache file of seed {seed} under {folder}, got {files}")
    out = {}
    for line in files[0].read_text().splitlines() if files else []:
        if line.strip():
            d = json.loads(line)
            out[d["key"]] = d["value"][0]["metrics"]
    return out


def main(family: str = "first") -> None:
    if family not in FAMILIES:
        raise SystemExit(f"family must be one of {list(FAMILIES)}, got {family!r}")
    candidates, out_name = FAMILIES[family]
    inc = {arm: {} for arm in ARMS}
    for s in SEEDS:
        old = units(ROOT / "lnpt_teacher_recipe", s)
        for arm in ARMS:
            inc[arm][s] = old[f"{INCUMBENT}/{arm}"]["val_accuracy"]
    rows = [
        [f"{arm} (session 17, default mask)", report.format_mean_std(inc[arm].values(), 2, 100)]
        for arm in ARMS
    ]
    doc: dict[str, object] = {
        "incumbent": {a: {str(s): v for s, v in inc[a].items()} for a in ARMS}
    }
    qualifying = {}
    for name, folder in candidates.items():
        cand = {}
        for s in SEEDS:
            c = units(ROOT / folder, s).get(CANDIDATE)
            if c is not None:
                cand[s] = c["val_accuracy"]
        if sorted(cand) != list(SEEDS):
            print(
                f"{name}: finished seeds {sorted(cand)} of {list(SEEDS)}: not run, cannot qualify"
            )
            doc[name] = {"candidate": cand, "finished": False, "qualifies": False}
            continue
        d = report.paired_difference(
            [cand[s] for s in SEEDS], [inc["lnpt+label-free"][s] for s in SEEDS]
        )
        low = [s for s in SEEDS if cand[s] < FLOOR]
        ok = not low and d.low > 0
        vs = {}
        for arm in ARMS[1:]:
            e = report.paired_difference([cand[s] for s in SEEDS], [inc[arm][s] for s in SEEDS])
            vs[arm] = [e.mean, e.low, e.high]
            print(f"{name} - {arm}: {e.format(2, 100)}")
        print(
            f"{name} - default mask (LNPT label-free): {d.format(2, 100)}; below 80%: {low or 'none'}"
        )
        rows.append([f"LNPT label-free, {name}", report.format_mean_std(cand.values(), 2, 100)])
        doc[name] = {
            "candidate": {str(s): cand[s] for s in SEEDS},
            "paired_vs_default": [d.mean, d.low, d.high],
            "paired_vs": vs,
            "below_floor": low,
            "qualifies": ok,
        }
        if ok:
            qualifying[name] = d.mean
    adopted = max(qualifying, key=qualifying.get) if qualifying else None
    doc["adopted"] = adopted
    print(report.markdown_table(["students (validation, seeds 0-6, 95%)", "accuracy %"], rows))
    print(f"rule: {'ADOPT ' + adopted if adopted else 'none qualifies: the default stays'}")
    path = ROOT / out_name
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main(*sys.argv[1:2])
