#!/usr/bin/env bash
# Build the addon with AddressSanitizer + UBSan into native/build/asan and run the native
# tests against it. Node itself is not instrumented, so libasan is preloaded and leak
# detection (which would report Node's own allocations) is off.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

LESA_NATIVE_BUILD_DIR="$ROOT/native/build/asan" \
LESA_NATIVE_FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
  bash native/build.sh
npx tsc -p tsconfig.json

LD_PRELOAD="$(g++ -print-file-name=libasan.so)" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
LESA_NATIVE_ADDON="$ROOT/native/build/asan/lesa_native.node" \
  node --test --test-concurrency=1 dist/test/native.test.js dist/test/native-predictor.test.js
