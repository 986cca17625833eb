#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), TypeScript tests, Python tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FIX="$(bash scripts/setup.sh | tail -n 1)"
export LESA_FIXTURES="$FIX"
PY="$(bash scripts/setup_python.sh --print-python)"
export LESA_PYTHON="$PY"
status=0
# two test files at once: each works in its own temp dirs (measured 169 s -> 142 s on 2 cores)
node --test --test-concurrency=2 dist/test/ || status=1
# two pytest workers, a test file each (module fixtures stay in one process; every test works in
# its own temp dirs); conftest.py gives each worker one thread
"$PY" -m pytest python/tests -q -p no:cacheprovider -n 2 --dist loadfile || status=1
exit $status
