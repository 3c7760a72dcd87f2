#!/usr/bin/env bash
# The side-by-side benchmark's scripts still parse (scripts/bench.sh,
# bench/*.mjs, bench/peer/*.js). Only a syntax check: the benchmark itself
# prints numbers and is run by hand (docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash -n scripts/bench.sh
for f in bench/*.mjs bench/peer/*.js; do node --check "$f"; done
echo "bench scripts: syntax ok"
