#!/usr/bin/env bash
# Compile the lesa Node-API addon with g++ directly (node-gyp would download headers).
#   bash native/build.sh                     -> native/build/lesa_native.node
#   LESA_NATIVE_BUILD_DIR=dir LESA_NATIVE_FLAGS="-fsanitize=address" bash native/build.sh
# Skips the compile when the output is newer than every source and the flags are unchanged.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
OUT_DIR="${LESA_NATIVE_BUILD_DIR:-$HERE/build}"
OUT="$OUT_DIR/lesa_native.node"
EXTRA="${LESA_NATIVE_FLAGS:--O3}"
NAPI_INC="$ROOT/node_modules/node-addon-api"
NODE_INC="${NODE_INCLUDE_DIR:-/usr/include/node}"

for f in "$NAPI_INC/napi.h" "$NODE_INC/node_api.h" /usr/include/lapacke.h; do
  [[ -f "$f" ]] || {
    echo "native/build.sh: missing $f. Fix: npm install && apt-get install -y libopenblas-dev liblapacke-dev" >&2
    exit 1
  }
done

mkdir -p "$OUT_DIR"
STAMP="$OUT_DIR/.flags"
if [[ -f "$OUT" && "$(cat "$STAMP" 2>/dev/null)" == "$EXTRA" ]]; then
  newer="$(find "$HERE/src" "$HERE/build.sh" -newer "$OUT" -print -quit)"
  [[ -z "$newer" ]] && exit 0
fi

echo "native/build.sh: compiling $OUT" >&2
# shellcheck disable=SC2206
CXXFLAGS=(-std=c++17 -fPIC $EXTRA -fno-math-errno -ffp-contract=off -Wall -Wextra -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -fexceptions
  -I"$NAPI_INC" -I"$NODE_INC")
pids=() objs=()
for src in "$HERE"/src/*.cc; do  # one g++ per file, in parallel
  obj="$OUT_DIR/$(basename "$src" .cc).o"
  objs+=("$obj")
  g++ "${CXXFLAGS[@]}" -c "$src" -o "$obj" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
# shellcheck disable=SC2086
g++ -shared $EXTRA "${objs[@]}" -o "$OUT.tmp" -lopenblas -llapacke
mv "$OUT.tmp" "$OUT"
echo "$EXTRA" > "$STAMP"
