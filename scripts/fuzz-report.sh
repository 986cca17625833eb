#!/usr/bin/env bash
# Robustness figures: runs the in-process checkpoint fuzz, the CLI hostile-input suite and the
# interrupt / disk-full suite, then prints the numbers to quote (docs/robustness.md).
#   bash scripts/fuzz-report.sh            # build first with: npx tsc -p tsconfig.json
#   LESA_CLI_PARALLEL=4 bash scripts/fuzz-report.sh
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
for f in dist/test/fuzz-checkpoint.test.js dist/test/cli-hostile.test.js dist/test/cli-interrupt.test.js; do
  [[ -f "$f" ]] || { echo "fuzz-report: $f missing; run: npx tsc -p tsconfig.json" >&2; exit 2; }
done
LOG="$(mktemp -d "${TMPDIR:-/tmp}/lesa-fuzz-report-XXXXXX")"
trap 'rm -rf "$LOG"' EXIT
status=0
run() { # name file
  local t0=$SECONDS
  node --test --test-concurrency=1 "$2" >"$LOG/$1.log" 2>&1 || status=1
  echo "$1: $((SECONDS - t0)) s, $(grep -E '^# (pass|fail|skipped) ' "$LOG/$1.log" | tr '\n' ' ' | sed 's/# //g')"
}
echo "== lesa robustness report ($(git rev-parse --short HEAD 2>/dev/null || echo '?'), node $(node --version), $(nproc) cores)"
run checkpoint-fuzz dist/test/fuzz-checkpoint.test.js
run cli-hostile dist/test/cli-hostile.test.js
run cli-interrupt dist/test/cli-interrupt.test.js
echo
echo "-- in-process fuzz (openCheckpoint on malformed checkpoints)"
grep -hoE 'fuzz: [0-9]+ malformed cases.*' "$LOG/checkpoint-fuzz.log" | head -1
grep -q '^# fail 0' "$LOG/checkpoint-fuzz.log" && echo "all cases rejected with a CheckpointError, inputs unchanged" || echo "FAILURES: see the test output"
echo
echo "-- CLI hostile inputs (each through a real lesa process)"
grep -hoE 'hostile-cli (groups|summary|known): .*' "$LOG/cli-hostile.log"
S="$(grep -hoE 'hostile-cli summary: .*' "$LOG/cli-hostile.log" | head -1)"
fig() { sed -nE "s/.* $1=([0-9]+).*/\1/p" <<<"$S"; }
if [[ -n "$S" ]]; then
  printf '%-20s %s\n' "inputs tried" "$(fig inputs)" "CLI runs" "$(fig runs)" "crashes" "$(fig crashes)" "hangs" "$(fig hangs)" \
    "internal errors" "$(fig internal_errors)" "partial outputs" "$(fig partial_outputs)" "inputs modified" "$(fig inputs_modified)" \
    "accepted (exit 0)" "$(fig accepted)" "bad messages" "$(fig bad_messages)" "of which known" "$(fig known)"
fi
grep -hE '^# +(FINDING|KNOWN)' "$LOG/cli-hostile.log" | sed 's/^# */  /' | cut -c1-300 | head -40
echo
echo "-- interrupts and disk full"
grep -hoE 'interrupt: .*' "$LOG/cli-interrupt.log" | cut -c1-300
grep -hE '^(not )?ok ' "$LOG/cli-interrupt.log"
[[ $status -eq 0 ]] && echo "== all suites passed" || echo "== SOME SUITES FAILED (logs were in $LOG; rerun the file with node --test to see them)"
exit $status
