"""Held-out source accuracy of bench rows: deployed model vs source guide, by source domain.

Usage: ``python packages/cdhm/scripts/source_guide_acc.py CACHE METHOD [METHOD ...]`` with CACHE a
``<name>_cache.json`` of ``cdhm bench`` (T = 4). For every METHOD and source domain it prints the
mean over task-seeds (± std) of ``acc_source`` (held-out source windows through the deployed
model, i.e. the target guide once split off) and ``acc_source_guide`` (the same windows through
the source guide; recorded from session 25 on, absent in older caches). Reads only the cache.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from cdhm.bench import BenchConfig, _cache_key
from cdhm.data import DOMAIN_TIERS


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cache_file, *methods = argv
    runs = json.loads(Path(cache_file).read_text())[_cache_key(BenchConfig(n_segments=4))]
    names = [d.name for d in DOMAIN_TIERS["hard"]]
    for m in methods:
        by_src: dict[str, dict[str, list[float]]] = {}
        for job, have in runs.items():
            if m not in have:
                continue
            src = names[int(job.split("->")[0])]
            row = by_src.setdefault(src, {"acc_source": [], "acc_source_guide": []})
            for k in row:
                if k in have[m]["metrics"]:
                    row[k].append(100 * have[m]["metrics"][k])
        for src, row in sorted(by_src.items()):
            cells = [
                f"{k} {np.mean(v):6.2f} ± {np.std(v, ddof=1) if len(v) > 1 else 0.0:5.2f} (n={len(v)})"
                if v
                else f"{k} not recorded"
                for k, v in row.items()
            ]
            print(f"{m:42s} source {src}: " + "  ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
