#!/usr/bin/env bash
# Does LESA carry information on a model? `lesa analyze --information`, one process per
# (weight type, held-out layer) so two cores are both used, merged into a markdown table.
# Usage: bench/lesa_information.sh CKPT OUTDIR "k_proj v_proj" "8 15 22"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CKPT="$1"; OUT="$2"; TYPES="${3:-k_proj v_proj}"; LAYERS="${4:-8 15 22}"
PY="${LESA_PYTHON:-python3}"
mkdir -p "$OUT"
for t in $TYPES; do
  for l in $LAYERS; do
    nice -n 10 node "$ROOT/dist/src/cli/bin.js" analyze "$CKPT" --information --types "$t" --layers "$l" --json --quiet > "$OUT/$t-$l.json" &
  done
done
wait
"$PY" "$ROOT/bench/lesa_information_table.py" "$OUT"/*.json
