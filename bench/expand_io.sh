#!/usr/bin/env bash
# Expansion of SmolLM2-135M 30→45 with copy and solar next to `cp -r` of the same checkpoint,
# in the same run: wall time, ratio to cp, peak RSS. Writes bench/results/expand-io.md.
#   bash bench/expand_io.sh [FIXTURE_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${1:-${LESA_FIXTURES:-$HOME/.cache/lesa/fixtures}/smollm2-135m}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lesa-bench-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
RES="$ROOT/bench/results/expand-io.md"

measure() { # name, command...: prints "name wall_s peak_rss_mb"
  local name=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  read -r wall rss < "$WORK/time"
  echo "$name $wall $((rss / 1024))"
}

rows=()
for rep in 1 2 3; do
  rm -rf "$WORK"/out-*
  rows+=("$(measure "cp-r" cp -r "$SRC" "$WORK/out-cp")")
  rows+=("$(measure "copy" node "$ROOT/dist/src/cli/bin.js" expand "$SRC" -o "$WORK/out-copy" --method copy --target-layers 45 --quiet)")
  rows+=("$(measure "solar" node "$ROOT/dist/src/cli/bin.js" expand "$SRC" -o "$WORK/out-solar" --method solar --target-layers 44 --quiet)")
done
{
  echo "# Expansion I/O: SmolLM2-135M 30→45 (solar 30→44: its target must be even)"
  echo
  echo "Command: \`bash bench/expand_io.sh\` on $(date -u +%F), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem/{print $2}') GiB RAM, Node $(node --version)."
  echo "Page cache dropped before each command when permitted. Output sizes: cp $(du -sm "$SRC" | cut -f1) MB; copy/solar write ~1.5x that."
  echo "Every expansion also validates every header, checks every float tensor for NaN/Inf, hashes the input (sha256) and every output file, and fsyncs."
  echo
  echo "| run | command | wall s | peak RSS MB | wall / cp of the same run |"
  echo "|---|---|---|---|---|"
  for rep in 0 1 2; do
    cp_wall=$(echo "${rows[$((rep*3))]}" | cut -d' ' -f2)
    for k in 0 1 2; do
      read -r name wall rss <<<"${rows[$((rep*3+k))]}"
      echo "| $((rep+1)) | $name | $wall | $rss | $(awk -v a="$wall" -v b="$cp_wall" 'BEGIN{printf "%.2f", a/b}') |"
    done
  done
  echo
  echo "Largest single tensor: model.embed_tokens.weight, 49152×576 f32 = 113 MB."
} > "$RES"
cat "$RES"
