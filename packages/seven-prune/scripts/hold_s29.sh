#!/usr/bin/env bash
# Session 29's locked hold (rule docs/benchmarks/seven-prune-overhead-s29-rule.md, parts A and B):
# run from the repository root as `flock /tmp/heavy.lock nice -n 5 bash packages/seven-prune/scripts/hold_s29.sh`.
set -euo pipefail
PY=.nox/workspace/bin/python
OUT=docs/benchmarks/seven-prune-overhead-s29
mkdir -p "$OUT"
{ echo "hold start $(date -u +%T) UTC"; uptime; lscpu | grep 'Model name'; } > "$OUT/load-before.txt"
$PY packages/seven-prune/scripts/profile_chunk_s29.py --reps 40 --json "$OUT/part-a.json" \
  > docs/benchmarks/seven-prune-profile-chunk-s29.txt 2>&1
KEEP=$($PY -c "import json; d=json.load(open('$OUT/part-a.json')); print(d['best'] if d['keep'] else 0)")
if [ "$KEEP" != "0" ]; then
  ARGS=(--arms chunk --chunk "$KEEP")
else
  ARGS=(--arms lean)
fi
echo "part A: chunk $KEEP -> ${ARGS[*]} ($(date -u +%T) UTC)" | tee -a "$OUT/load-before.txt"
$PY packages/seven-prune/scripts/overhead_repeat_s29.py run "$OUT" "${ARGS[@]}" \
  --order 1 0 0 1 1 0 0 1 --max-minutes 8.0 --stop-at 09:56
echo "hold end $(date -u +%T) UTC"
