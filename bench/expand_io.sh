#!/usr/bin/env bash
# Copy-like expansion next to `cp -r` (page cache only) and `cp -r` + fsync of every file (as
# durable as lesa's output), alternating in one run: wall time, throughput of the bytes each
# writes, the ratios, peak RSS, and the load average at each row.
#   bash bench/expand_io.sh [SRC_DIR] [TARGET_LAYERS] [METHODS] [REPS]
# Defaults: the SmolLM2-135M fixture, 45 layers, "copy solar llama-pro", 3 repetitions
# (solar gets TARGET_LAYERS rounded down to even). BASE_ROOT=<another lesa checkout, built>
# adds each method run by that checkout too (e.g. the code before a change), in the same
# alternation. Prints a markdown section on stdout; bench/results/expand-io.md collects them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${1:-${LESA_FIXTURES:-$HOME/.cache/lesa/fixtures}/smollm2-135m}"
TARGET="${2:-45}"
METHODS="${3:-copy solar llama-pro}"
REPS="${4:-3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/lesa-bench-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

dropped=no
if sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then dropped=yes; fi

bytes_of() { du -sb --apparent-size "$1" | cut -f1; }
load() { cut -d' ' -f1 /proc/loadavg; }

measure() { # label out-dir command...: prints "label wall_s peak_rss_mb out_bytes load cpu_s"
  local label=$1 out=$2; shift 2
  rm -rf "$out"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  local l; l=$(load)
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  read -r wall rss user sys < "$WORK/time"
  echo "$label $wall $((rss / 1024)) $(bytes_of "$out") $l $(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u + s}')"
  rm -rf "$out"
}

expand_cmd() { # root method
  local t=$TARGET
  [[ $2 == solar ]] && t=$((TARGET / 2 * 2))
  echo node "$1/dist/src/cli/bin.js" expand "$SRC" -o "$WORK/out" --method "$2" --target-layers "$t" --quiet
}

rows=()
for rep in $(seq "$REPS"); do
  for m in $METHODS; do
    rows+=("$rep $(measure cp-r "$WORK/out" cp -r "$SRC" "$WORK/out")")
    # the same copy made durable the way lesa makes its output durable: fsync of every file
    rows+=("$rep $(measure cp-r+fsync "$WORK/out" bash -c 'cp -r "$1" "$2" && find "$2" -type f -exec sync {} + && sync "$2"' _ "$SRC" "$WORK/out")")
    # shellcheck disable=SC2046
    rows+=("$rep $(measure "$m" "$WORK/out" $(expand_cmd "$ROOT" "$m"))")
    if [[ -n "${BASE_ROOT:-}" ]]; then
      # shellcheck disable=SC2046
      rows+=("$rep $(measure "$m(before)" "$WORK/out" $(expand_cmd "$BASE_ROOT" "$m"))")
    fi
  done
done

echo "## $(basename "$SRC") → $TARGET layers"
echo
echo "Command: \`bash bench/expand_io.sh $SRC $TARGET \"$METHODS\" $REPS\`${BASE_ROOT:+ with BASE_ROOT=$BASE_ROOT} on $(date -u '+%F %H:%M') UTC, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem/{print $2}') GiB RAM, Node $(node --version), $(df -T "$SRC" | awk 'NR==2{print $2}')."
echo "Page cache dropped before each command: $dropped. Input $(bytes_of "$SRC") bytes. Each expansion validates every header, checks every float tensor for NaN/Inf, hashes every output file (sha256) and fsyncs it; cp does none of that."
echo
echo "| rep | command | load (1 min) | wall s | CPU s (user+sys) | output GB | GB/s | vs cp -r just before | vs cp -r + fsync just before | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
cp_tput=1 sync_tput=1
for row in "${rows[@]}"; do
  read -r rep name wall rss out l cpu <<<"$row"
  tput=$(awk -v b="$out" -v w="$wall" 'BEGIN{printf "%.3f", b / 1e9 / (w > 0 ? w : 0.01)}')
  [[ $name == cp-r ]] && cp_tput=$tput
  [[ $name == cp-r+fsync ]] && sync_tput=$tput
  ratio() { awk -v a="$tput" -v b="$1" 'BEGIN{printf "%.2f", a / b}'; }
  vs_sync=$(ratio "$sync_tput"); [[ $name == cp-r ]] && vs_sync=""
  echo "| $rep | $name | $l | $wall | $cpu | $(awk -v b="$out" 'BEGIN{printf "%.2f", b / 1e9}') | $tput | $(ratio "$cp_tput") | $vs_sync | $rss |"
done
