"""Apply the committed rule of the `score_epochs` reading (README, session 18) to the finished runs.

The candidate: LNPT's mask scored after 5 epochs of the student's own dense label-free training
(`lnpt bench --student-lr-check --seeds 7 --student-recipes 1e-2,warmup=5 --student-lr-arms
lnpt+label-free --score-epochs 5 --out docs/benchmarks/lnpt_score_state --resume`). The incumbent:
the same students with the mask scored at init, session 17's cached units
(`docs/benchmarks/lnpt_teacher_recipe/cache`, 240 epochs, warm-up 5). Rule: adopt only if no
candidate student reads below 80% and the paired Δ (candidate − incumbent, validation accuracy,
seeds 0-6) has a 95% bootstrap CI lower bound > 0.

Usage: `python packages/lnpt/scripts/score_state_rule.py` from the repository root; prints the
table and writes `docs/benchmarks/lnpt_score_state/score_state_rule.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskloop import report

ROOT = Path("docs/benchmarks")
SEEDS = range(7)
FLOOR = 0.8
INCUMBENT = "lr=0.01,epochs=240,warmup=5"
ARMS = ("lnpt+label-free", "snip+supervised", "dense+supervised", "snip+label-free")


def units(folder: Path, seed: int) -> dict[str, dict[str, float]]:
    """Key -> metrics of every finished unit of one seed's cache file under `folder/cache`."""
    files = sorted((folder / "cache").glob(f"student-lr-cnn-seed{seed}-*.jsonl"))
    if len(files) != 1:
        raise SystemExit(f"expected one cache file of seed {seed} under {folder}, got {files}")
    out = {}
    for line in files[0].read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            out[d["key"]] = d["value"][0]["metrics"]
    return out


def main() -> None:
    cand, inc = {}, {arm: {} for arm in ARMS}
    for s in SEEDS:
        c = units(ROOT / "lnpt_score_state", s).get("lr=0.01,warmup=5/lnpt+label-free")
        if c is not None:
            cand[s] = c["val_accuracy"]
        old = units(ROOT / "lnpt_teacher_recipe", s)
        for arm in ARMS:
            inc[arm][s] = old[f"{INCUMBENT}/{arm}"]["val_accuracy"]
    shared = sorted(set(cand) & set(inc["lnpt+label-free"]))
    if len(shared) < len(SEEDS):
        raise SystemExit(f"candidate finished on seeds {shared} of {list(SEEDS)}; run --resume")
    d = report.paired_difference(
        [cand[s] for s in shared], [inc["lnpt+label-free"][s] for s in shared]
    )
    low = [s for s in shared if cand[s] < FLOOR]
    adopt = not low and d.low > 0
    rows = [["LNPT label-free, score_epochs=5", report.format_mean_std(cand.values(), 2, 100)]]
    for arm in ARMS:
        rows.append(
            [f"{arm} (session 17, at init)", report.format_mean_std(inc[arm].values(), 2, 100)]
        )
    print(report.markdown_table(["students (validation, seeds 0-6, 95%)", "accuracy %"], rows))
    vs = {}
    for arm in ("snip+supervised", "dense+supervised"):
        e = report.paired_difference([cand[s] for s in shared], [inc[arm][s] for s in shared])
        vs[arm] = [e.mean, e.low, e.high]
        print(f"score_epochs=5 - {arm}: {e.format(2, 100)}")
    print(
        f"score_epochs=5 - at init (LNPT label-free): {d.format(2, 100)}; below 80%: {low or 'none'}"
    )
    print("rule: " + ("ADOPT" if adopt else "REJECT (CI lower bound not > 0 or a student < 80%)"))
    doc = {
        "candidate": {str(s): cand[s] for s in shared},
        "incumbent": {arm: {str(s): v for s, v in inc[arm].items()} for arm in ARMS},
        "paired_vs_at_init": [d.mean, d.low, d.high],
        "paired_vs": vs,
        "below_floor": low,
        "adopted": adopt,
    }
    path = ROOT / "lnpt_score_state" / "score_state_rule.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
