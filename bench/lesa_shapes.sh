#!/usr/bin/env bash
# LESA at real model shapes on this machine: a synthetic checkpoint (random bf16 weights,
# real shapes) expanded with --method lesa; wall time per phase and peak RSS.
#   bash bench/lesa_shapes.sh llama-3.2-1b [EPOCHS]     (llama-3-8b works the same way)
# Appends a row to bench/results/lesa-shapes.md and prints per-type phase times (bench/phase_spans.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHAPE="${1:?shape: llama-3.2-1b or llama-3-8b}"
EPOCHS="${2:-1}"
PY="$(bash "$ROOT/scripts/setup_python.sh" --print-python)"
WORK="${LESA_BENCH_DIR:-${LESA_CACHE:-$HOME/.cache/lesa}/bench}"
SRC="$WORK/synthetic-$SHAPE"
OUT="$WORK/out-$SHAPE"
mkdir -p "$WORK"
[[ -f "$SRC/config.json" ]] || "$PY" "$ROOT/bench/make_synthetic.py" "$SHAPE" "$SRC"
L=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['num_hidden_layers'])" "$SRC/config.json")
TARGET=$((L + L / 2))
rm -rf "$OUT"
/usr/bin/time -f "%e %M" -o "$WORK/time" node "$ROOT/dist/src/cli/bin.js" expand "$SRC" -o "$OUT" --method lesa \
  --target-layers "$TARGET" --epochs "$EPOCHS" --max-memory "${MAX_MEMORY:-4GiB}" --json > "$WORK/result.json" 2> "$WORK/events.jsonl"
read -r wall rss < "$WORK/time"
RES="$ROOT/bench/results/lesa-shapes.md"
[[ -f "$RES" ]] || printf '# LESA at real shapes (synthetic random bf16 weights)\n\nCommand: `bash bench/lesa_shapes.sh SHAPE EPOCHS`. Phases in wall seconds; training cut to the epochs shown.\n\n| date | shape | layers | epochs | machine | phases (s) | total s | peak RSS GB |\n|---|---|---|---|---|---|---|---|\n' > "$RES"
phases=$("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(', '.join(f'{k} {v:.0f}' for k,v in d['phases'].items()))" "$WORK/result.json")
echo "| $(date -u +%F) | $SHAPE | $L→$TARGET | $EPOCHS | $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, load $(cut -d' ' -f1 /proc/loadavg) | $phases | $wall | $(awk -v k="$rss" 'BEGIN{printf "%.2f", k/1048576}') |" >> "$RES"
tail -n 1 "$RES"
echo "per weight type (bench/phase_spans.py $WORK/events.jsonl):"
"$PY" "$ROOT/bench/phase_spans.py" "$WORK/events.jsonl"
rm -rf "$OUT"
