#!/usr/bin/env bash
# Build the test fixtures (idempotent, instant when built) and print their directory:
#   ${LESA_FIXTURES:-${LESA_CACHE:-$HOME/.cache/lesa}/fixtures}
# Optional arguments: fixture names to build (default all).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$ROOT/scripts/setup_python.sh" --print-python)"
exec "$PY" -m lesa_py.testing.fixtures "$@"
