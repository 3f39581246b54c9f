"""Rule s34's read (issue 18): the one-host verdicts and today's vs committed rows, unit by unit.

Reads only committed caches: the default's rows (v1272) from ``cdhm_test_adda_cache.json`` and
today's re-runs from ``cdhm_test_s34_onehost_cache.json`` (``MK-MMD+evidence-all``) and, when
present, ``cdhm_test_s34_onehost_nt_cache.json`` (``CDHM-no-temporal+adda+optcarry+sskip``).
For each re-run row: the verdict (default − today's row, 12-task mean per seed, paired over the
complete seeds, bootstrap 95 % CI of ``maskloop.report.paired_difference``, as
``packages/cdhm/scripts/paired_rule.py``), the committed verdict for comparison, and how many of
the 60 units of today's row equal the committed row bit for bit (target accuracy, every metric but
``train_seconds``, predictions). Writes ``cdhm_test_s34_summary.json`` next to this file.

Run: ``.nox/workspace/bin/python docs/benchmarks/cdhm-next/cdhm_test_s34_summary.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from maskloop.report import paired_difference

HERE = Path(__file__).resolve().parent
DEFAULT_ROW = "CDHM+adda+stickyz0.25+optcarry+sskip+sar1"
READS = {
    "headline": ("cdhm_test_s34_onehost_cache.json", "MK-MMD+evidence-all", 2.0),
    "temporal prior": (
        "cdhm_test_s34_onehost_nt_cache.json",
        "CDHM-no-temporal+adda+optcarry+sskip",
        0.0,
    ),
}


def runs_of(file: str) -> dict:
    (runs,) = json.loads((HERE / file).read_text()).values()
    return runs


def seed_means(runs: dict, row: str) -> dict[int, float]:
    """{seed: 12-task mean target accuracy} over the seeds where `row` has all 12 tasks."""
    per: dict[int, list[float]] = {}
    for job, have in runs.items():
        if row in have:
            per.setdefault(int(job.split("|")[1]), []).append(have[row]["metrics"]["acc_target"])
    return {s: float(np.mean(v)) for s, v in sorted(per.items()) if len(v) == 12}


def main() -> None:
    committed = runs_of("cdhm_test_adda_cache.json")
    cd = seed_means(committed, DEFAULT_ROW)
    out: dict = {
        "default_row": DEFAULT_ROW,
        "default_mean": 100 * float(np.mean(list(cd.values()))),
    }
    for goal, (file, row, bar) in READS.items():
        if not (HERE / file).exists():
            out[goal] = {"row": row, "status": "not run"}
            continue
        today = runs_of(file)
        tm = seed_means(today, row)
        seeds = sorted(set(tm) & set(cd))
        rec: dict = {"row": row, "cache": file, "complete_seeds": seeds, "units": len(today)}
        if len(seeds) < 5:
            rec["status"] = "incomplete, not read"
        else:
            d = paired_difference([cd[s] for s in seeds], [tm[s] for s in seeds])
            old = seed_means(committed, row)
            d_old = paired_difference([cd[s] for s in seeds], [old[s] for s in seeds])
            drift = paired_difference([tm[s] for s in seeds], [old[s] for s in seeds])
            rec.update(
                {
                    "today_mean": 100 * float(np.mean([tm[s] for s in seeds])),
                    "today_std": 100 * float(np.std([tm[s] for s in seeds], ddof=1)),
                    "committed_mean": 100 * float(np.mean([old[s] for s in seeds])),
                    "delta_one_host": [100 * d.mean, 100 * d.low, 100 * d.high],
                    "delta_committed_mixed_hosts": [
                        100 * d_old.mean,
                        100 * d_old.low,
                        100 * d_old.high,
                    ],
                    "today_minus_committed": [100 * drift.mean, 100 * drift.low, 100 * drift.high],
                    "bar": bar,
                    "status": "met" if d.mean * 100 >= bar and d.low > 0 else "missed",
                }
            )
        acc_diff, bit_equal = [], 0
        for job, have in today.items():
            a, b = have[row], committed[job][row]
            acc_diff.append(100 * (a["metrics"]["acc_target"] - b["metrics"]["acc_target"]))
            same = a["pred"] == b["pred"] and all(
                a["metrics"].get(k) == v for k, v in b["metrics"].items() if k != "train_seconds"
            )
            bit_equal += int(same)
        rec["units_bit_equal_to_committed"] = bit_equal
        rec["units_acc_differs"] = int(sum(x != 0 for x in acc_diff))
        rec["unit_acc_diff_min_max"] = [min(acc_diff), max(acc_diff)]
        out[goal] = rec
    (HERE / "cdhm_test_s34_summary.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
