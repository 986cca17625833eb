#!/usr/bin/env bash
# SmolLM2-135M 30→45 with LESA: lesa (TS + native) next to the PyTorch oracle pipeline
# (the notebook algorithm, python/lesa_py/oracle.py), same epochs, same run, one after the
# other. Wall time and peak RSS of each; appends to bench/results/lesa-vs-oracle.md.
#   bash bench/lesa_vs_oracle.sh [EPOCHS] [ORACLE_THREADS] [LESA_THREADS]
# LESA_THREADS: lesa's --threads (default: not passed, i.e. the cores).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EPOCHS="${1:-10}"
OT="${2:-1}"
LT="${3:-}"
SRC="${LESA_FIXTURES:-$HOME/.cache/lesa/fixtures}/smollm2-135m"
PY="$(bash "$ROOT/scripts/setup_python.sh" --print-python)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lesa-vs-oracle-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
load0=$(cut -d' ' -f1 /proc/loadavg)
/usr/bin/time -f "%e %M" -o "$WORK/t-lesa" node "$ROOT/dist/src/cli/bin.js" expand "$SRC" -o "$WORK/lesa" --method lesa \
  --target-layers 45 --epochs "$EPOCHS" --fill layer0 ${LT:+--threads "$LT"} --json --quiet > "$WORK/lesa.json"
rm -rf "$WORK/lesa"
/usr/bin/time -f "%e %M" -o "$WORK/t-oracle" "$PY" "$ROOT/bench/oracle_pipeline.py" "$SRC" --target-layers 45 \
  --epochs "$EPOCHS" --fill layer0 --threads "$OT" > "$WORK/oracle.json"
load1=$(cut -d' ' -f1 /proc/loadavg)
read -r lw lr < "$WORK/t-lesa"; read -r ow or < "$WORK/t-oracle"
RES="$ROOT/bench/results/lesa-vs-oracle.md"
[[ -f "$RES" ]] || printf '# LESA: lesa vs the PyTorch oracle pipeline, SmolLM2-135M 30→45\n\nCommand: `bash bench/lesa_vs_oracle.sh EPOCHS ORACLE_THREADS` (lesa: OpenBLAS 2 threads for the decomposition, 1 for training; oracle: torch threads as shown). Wall seconds from process start to exit; peak RSS from /usr/bin/time.\n\n| date | epochs | machine (load before/after) | lesa s | oracle s (threads) | speed-up | lesa RSS MB | oracle RSS MB | RSS ratio | lesa phases (s) | oracle phases (s) |\n|---|---|---|---|---|---|---|---|---|---|---|\n' > "$RES"
lp=$("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(', '.join(f'{k} {v:.0f}' for k,v in d['phases'].items()))" "$WORK/lesa.json")
op=$("$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(', '.join(f'{k} {v:.0f}' for k,v in d['phases_s'].items()))" "$WORK/oracle.json" 2>/dev/null || echo "see oracle json")
echo "| $(date -u +%F) | $EPOCHS | $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB ($load0/$load1) | $lw${LT:+ (--threads $LT)} | $ow ($OT) | $(awk -v a="$ow" -v b="$lw" 'BEGIN{printf "%.1fx", a/b}') | $((lr/1024)) | $((or/1024)) | $(awk -v a="$lr" -v b="$or" 'BEGIN{printf "%.2f", a/b}') | $lp | $op |" >> "$RES"
tail -n 1 "$RES"
