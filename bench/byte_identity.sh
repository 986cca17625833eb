#!/usr/bin/env bash
# Expands every method on every tiny fixture (and llama-pro/copy on smollm2-135m) and prints
# "fixture method-args file sha256" for every output file; lesa.json is hashed without its
# "created" timestamp. Run before and after a refactor and diff the two listings:
#   bash bench/byte_identity.sh > /tmp/before.txt   ...   diff /tmp/before.txt /tmp/after.txt
# BYTE_FAMILIES="llama gemma3" limits it to those tiny families (and skips SmolLM2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIX=${LESA_FIXTURES:-/root/.cache/lesa/fixtures}
OUT=$(mktemp -d /tmp/lesa-bytes-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
lesa() { node "$ROOT/dist/src/cli/bin.js" "$@"; }
layers() { node -e "const c=require('$1/config.json');console.log((c.text_config??c).num_hidden_layers)"; }
hash_dir() { # $1 label, $2 dir
  for f in $(cd "$2" && find . -type f | sort); do
    if [ "$f" = ./lesa.json ]; then
      h=$(node -e "const m=JSON.parse(require('fs').readFileSync('$2/lesa.json','utf8'));delete m.created;process.stdout.write(JSON.stringify(m))" | sha256sum | cut -c1-64)
    else h=$(sha256sum "$2/$f" | cut -c1-64); fi
    echo "$1 ${f#./} $h"
  done
}
run() { # $1 fixture dir, rest: expand args
  local fx=$1; shift
  local dest="$OUT/out"
  rm -rf "$dest"
  local err
  if err=$(lesa expand "$fx" -o "$dest" --quiet "$@" 2>&1 >/dev/null); then
    hash_dir "$(basename "$fx") [$*]" "$dest"
  else echo "$(basename "$fx") [$*] refused: $err"; fi
}
# The fixtures of the first before/after runs (new fixtures would add lines to one side only).
for name in ${BYTE_FAMILIES:-gemma2 gemma3 llama mistral olmo2 phi3 qwen2 qwen3}; do for dt in bf16 f32; do
  fx="$FIX/tiny-$name-$dt"
  L=$(layers "$fx")
  T=$((L + 2)); S=$(( (L + 2) % 2 == 0 ? L + 2 : L + 3 ))
  run "$fx" -m copy --target-layers $T
  run "$fx" -m llama-pro --target-layers $T
  run "$fx" -m llama-pro --target-layers $T --placement uniform
  run "$fx" -m average --target-layers $T
  run "$fx" -m average --target-layers $T --align
  run "$fx" -m random --target-layers $T --seed 7
  run "$fx" -m random --target-layers $T --match-norm
  run "$fx" -m solar --target-layers $S
  run "$fx" -m stack --target-layers $((2 * L))
  run "$fx" -m ot-fuse --target-layers $T
  run "$fx" -m lesa --target-layers $T --epochs 2 --threads 2
  run "$fx" -m lesa --target-layers $T --epochs 2 --threads 1 --fill layer0 --zero-out --lambda 1e-3 --hidden 32 --batch 16 --lr 2e-3 --weight-decay 0.02 --seed 3
  run "$fx" -m lesa --target-layers $T --epochs 1 --align --threads 2 --max-memory 64KiB
done; done
[ -n "${BYTE_FAMILIES:-}" ] || run "$FIX/smollm2-135m" -m llama-pro --target-layers 32
[ -n "${BYTE_FAMILIES:-}" ] || run "$FIX/smollm2-135m" -m copy --target-layers 32 --after 3,20
