"""Issue 19, rule s31b: per-seed values, mean ± std and paired Δ (bootstrap 95 % CI) of the three
rows on validation seeds 80..84 (those cached), mR and hard mR, from the bench cache; writes the
summary JSON given as the first argument. Run from the repository root (seconds, reads JSON only):

    .nox/workspace/bin/python packages/ssjdn/scripts/summarize_s31b.py \\
        docs/benchmarks/ssjdn_validation_s31b_decision.json
"""

import json
import sys
from pathlib import Path

from maskloop.report import paired_difference
from ssjdn.bench import BenchSettings, cache_stem

cache = Path("docs/benchmarks/cache/val") / BenchSettings.quick().key()
ONE, TODAY, NEW = (
    "+SGS (one direction) centered",
    "+bidirectional centered",
    "+bidirectional centered complement",
)
seeds = range(80, 85)
out = {}
for metric in ("mR", "hard_mR"):
    runs = {}
    for m in (ONE, TODAY, NEW):
        runs[m] = {}
        for s in seeds:
            f = cache / f"{cache_stem(m, s)}.json"
            if f.is_file():
                runs[m][s] = json.loads(f.read_text())["metrics"][metric]
    import statistics as st

    for m, v in runs.items():
        vals = list(v.values())
        print(
            metric,
            m,
            {s: round(x, 2) for s, x in v.items()},
            f"{st.mean(vals):.2f} ± {st.stdev(vals):.2f}" if len(vals) > 1 else "",
        )
    for a, b in ((NEW, ONE), (NEW, TODAY), (TODAY, ONE)):
        common = [s for s in seeds if s in runs[a] and s in runs[b]]
        if len(common) < 2:
            continue
        d = paired_difference([runs[a][s] for s in common], [runs[b][s] for s in common])
        per = [round(runs[a][s] - runs[b][s], 2) for s in common]
        print(metric, f"{a} - {b}: N={len(common)} {d.format()} per seed {per}")
        out.setdefault(metric, {})[f"{a} - {b}"] = {
            "n": len(common),
            "mean": d.mean,
            "low": d.low,
            "high": d.high,
            "per_seed": dict(zip(common, per)),
        }
if len(sys.argv) > 1:
    Path(sys.argv[1]).write_text(json.dumps(out, indent=1) + "\n")
