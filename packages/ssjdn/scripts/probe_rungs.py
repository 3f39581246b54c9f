"""Why the bidirectional pattern and LSD do not add: probes on the validation draws (issue 19).

Trains ``+SGS (one direction)``, ``+bidirectional``, ``+LSD`` and ``+STL (full SSJDN)`` with the
benchmark's budget on the validation draws of each seed (never the test draws) and records:

- for every model with two BSD passes: `pass_overlap` (do the passes' SGS maps act on the same
  places; which keeps the small objects, on the hard split's twins), `pass_interplay` and
  `chain_agreement` (do the passes duplicate or undo each other; mR with one pass zeroed);
- for every model with SGS: `sgs_effect` (does SGS turn the pooled features or only rescale them);
- for ``+bidirectional`` (no LSD): `label_probe`, the category information its retrieval
  embeddings hold without LSD;
- for the models with LSD: `LSDTrace` (label accuracy per epoch; gradients of the retrieval loss
  and of lambda L_LSD on a fixed training batch after every epoch, including the cross-entropy
  taken through the encoders), `label_probe` and `semantic_reach`.

The trace works on copies of the model, so each run's mR equals the benchmark's cached run of the
same method and seed (checked: ``mR`` and ``hard_mR`` are written beside the probes).
Writes ``<out>/ssjdn_rung_probe.json``. Run (about 12 runs of ~15 s on 2 idle cores):
``flock /tmp/heavy.lock nice -n 5 .venv/bin/python packages/ssjdn/scripts/probe_rungs.py
--seeds 0 1 2 --out docs/benchmarks``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from ssjdn.bench import BenchSettings, bench_data, build_method, train_with_settings
from ssjdn.diagnostics import (
    LSDTrace,
    chain_agreement,
    label_probe,
    pass_interplay,
    pass_overlap,
    semantic_reach,
    sgs_effect,
)
from ssjdn.train import PairBatches, evaluate_retrieval

METHODS = ("+SGS (one direction)", "+bidirectional", "+LSD", "+STL (full SSJDN)")


def probe_batch(model, train, seed: int) -> tuple[torch.Tensor, ...]:
    """One fixed training batch (the first of an epoch drawn from its own generator)."""
    ids, mask = model.text.tokenize(train.flat_captions)
    gen = torch.Generator().manual_seed(10_000 + seed)
    return next(iter(PairBatches(train, ids, mask, 128, gen)))


def run(name: str, seed: int, settings: BenchSettings) -> dict:
    train, val, hard = bench_data(settings, seed, "val")
    model = build_method(name, train, seed)
    trace = LSDTrace(val, probe_batch(model, train, seed)) if model.lsd is not None else None
    train_with_settings(
        model, train, val, settings, seed, callbacks=[trace] if trace is not None else []
    )
    rec: dict = {"mR": evaluate_retrieval(model, val)["mR"]}
    rec["hard_mR"] = evaluate_retrieval(model, hard)["mR"]
    if model.bsd is not None and model.bsd.sgs != "none":
        rec.update(sgs_effect(model, val))
    if model.bsd is not None and len(model.bsd.orders) == 2:
        rec.update(pass_overlap(model, hard))
        rec.update(pass_interplay(model, val))
        rec.update(chain_agreement(model, val))
    if name == "+bidirectional" or model.lsd is not None:
        rec.update(label_probe(model, train, val))
    if model.lsd is not None:
        rec.update(semantic_reach(model, val))
        rec["trace"] = trace.records
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="docs/benchmarks")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    path = out / "ssjdn_rung_probe.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    settings = BenchSettings.quick()
    for seed in args.seeds:
        for name in args.methods:
            key = f"{name} | seed {seed}"
            if key in results:
                continue
            results[key] = run(name, seed, settings)
            r = results[key]
            print(f"{key}: mR {r['mR']:.2f} hard {r['hard_mR']:.2f}", flush=True)
            path.write_text(json.dumps(results, indent=1))
    summary: dict[str, dict[str, str]] = {}
    for name in METHODS:
        recs = [v for k, v in results.items() if k.startswith(f"{name} |")]
        keys = sorted({k for r in recs for k, v in r.items() if isinstance(v, float)})
        summary[name] = {
            k: f"{np.mean([r[k] for r in recs]):.4f} ± {np.std([r[k] for r in recs], ddof=1):.4f}"
            for k in keys
            if all(k in r for r in recs) and len(recs) > 1
        }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
