#!/usr/bin/env bash
# Does LESA carry information on a model? `lesa analyze --information`, one process per
# (weight type, held-out layer, seed), at most JOBS (default 2) at once, merged into a markdown
# table (with several seeds: median and [min, max] over the seeds).
# Usage: bench/lesa_information.sh CKPT OUTDIR "k_proj v_proj" "8 15 22" ["0 1 2 3 4"]
# Extra `lesa analyze` flags (e.g. --epochs 1) go in LESA_INFO_ARGS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CKPT="$1"; OUT="$2"; TYPES="${3:-k_proj v_proj}"; LAYERS="${4:-8 15 22}"; SEEDS="${5:-0}"
PY="${LESA_PYTHON:-python3}"; JOBS="${JOBS:-2}"
mkdir -p "$OUT"
for s in $SEEDS; do
  for t in $TYPES; do
    for l in $LAYERS; do
      while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
      f="$OUT/$t-$l-s$s.json"
      # shellcheck disable=SC2086
      ( nice -n 10 node "$ROOT/dist/src/cli/bin.js" analyze "$CKPT" --information --types "$t" --layers "$l" --seed "$s" ${LESA_INFO_ARGS:-} --json --quiet > "$f.part" && mv "$f.part" "$f" ) &
    done
  done
done
wait
"$PY" "$ROOT/bench/lesa_information_table.py" "$OUT"/*.json
