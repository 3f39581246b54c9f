#!/usr/bin/env bash
# Session 30's second locked hold (rule docs/benchmarks/seven-prune-overhead-s30-rule.md, the
# continuation): part B's run 4 (arm 1), then the package's tests. From the repository root:
# `flock /tmp/heavy.lock nice -n 5 bash packages/seven-prune/scripts/hold_s30b.sh`.
set -uo pipefail
PY=.nox/workspace/bin/python
OUT=docs/benchmarks/seven-prune-overhead-s30
echo "hold 2 start $(date -u +%T) UTC; $(uptime)" | tee -a "$OUT/load-before.txt"
if [ "$(date -u +%H%M)" -lt 1300 ]; then
  timeout 210 $PY packages/seven-prune/scripts/overhead_repeat_s30.py run "$OUT" --chunk 0 \
    --order 1 --first 4 --max-minutes 4 --stop-at 13:10
  echo "run 4 rc $? $(date -u +%T) UTC" | tee -a "$OUT/load-before.txt"
fi
timeout 200 $PY -m pytest packages/seven-prune -q -x -p no:cacheprovider > /tmp/s30/tests.log 2>&1
echo "tests rc $? $(date -u +%T) UTC" | tee -a "$OUT/load-before.txt"
tail -3 /tmp/s30/tests.log
