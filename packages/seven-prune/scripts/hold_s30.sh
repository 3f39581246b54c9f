#!/usr/bin/env bash
# Session 30's locked hold (rule docs/benchmarks/seven-prune-overhead-s30-rule.md, parts A and B):
# run from the repository root as `flock /tmp/heavy.lock nice -n 5 bash packages/seven-prune/scripts/hold_s30.sh`.
set -euo pipefail
PY=.nox/workspace/bin/python
OUT=docs/benchmarks/seven-prune-overhead-s30
mkdir -p "$OUT"
if [ "$(date -u +%H%M)" -ge 1300 ]; then echo "lock came at or after 13:00 UTC: no run (rule)"; exit 0; fi
{ echo "hold start $(date -u +%T) UTC"; uptime; lscpu | grep 'Model name'; } > "$OUT/load-before.txt"
timeout 150 $PY packages/seven-prune/scripts/profile_update_s30.py --rounds 60 --json "$OUT/part-a.json" \
  > "$OUT/part-a.txt" 2>&1 || echo "part A did not finish (rc $?): void, C = 0" | tee -a "$OUT/load-before.txt"
CHUNK=$($PY -c "import json; print(json.load(open('$OUT/part-a.json'))['chunk'])" 2>/dev/null || echo 0)
echo "part A: UPDATE_CHUNK $CHUNK ($(date -u +%T) UTC)" | tee -a "$OUT/load-before.txt"
timeout 560 $PY packages/seven-prune/scripts/overhead_repeat_s30.py run "$OUT" --chunk "$CHUNK" \
  --order 1 0 0 1 --max-minutes 9.0 --stop-at 13:10
echo "hold end $(date -u +%T) UTC" | tee -a "$OUT/load-before.txt"
