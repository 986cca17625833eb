#!/usr/bin/env bash
# Every set-up step, idempotent and quick when already done: system packages, npm
# dependencies, the native addon, the TypeScript build, the Python venv, the fixtures.
# Prints the fixtures directory on stdout (all progress goes to stderr).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

need_pkgs=()
# chromium: the analysis report's browser test (headless)
for p in libopenblas-dev liblapacke-dev chromium; do dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p"); done
if ((${#need_pkgs[@]})); then
  echo "setup: installing ${need_pkgs[*]}" >&2
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >&2
fi

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi

bash native/build.sh >&2
npx tsc -p tsconfig.json >&2
bash scripts/setup_python.sh >&2
bash scripts/fixtures.sh
