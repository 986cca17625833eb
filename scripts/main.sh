#!/usr/bin/env bash
# The main job on the bundled default: grow SmolLM2-135M-Instruct from 30 to 45 layers
# with LESA and with the default method (llama-pro, bottom placement), verify each output
# against its manifest, load it in transformers, and compare held-out perplexity
# (Moby-Dick) before and after. Output: ./out/smollm2-135m-lesa-45, ./out/smollm2-135m-default-45
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FIX="$(bash scripts/setup.sh | tail -n 1)"
PY="$(bash scripts/setup_python.sh --print-python)"
OUT="${1:-out/smollm2-135m-lesa-45}"
lesa() { node dist/src/cli/bin.js "$@"; }

DEF="${OUT%-lesa-45}-default-45"
lesa inspect "$FIX/smollm2-135m"
lesa expand "$FIX/smollm2-135m" -o "$OUT" --method lesa --target-layers 45 --force
lesa expand "$FIX/smollm2-135m" -o "$DEF" --target-layers 45 --force   # the default method (docs/study.md)
for m in "$OUT" "$DEF"; do
  lesa verify "$m"
  "$PY" -m lesa_py.testing.hfcheck "$m"
done
for m in "$FIX/smollm2-135m" "$OUT" "$DEF"; do
  echo "perplexity of $m on held-out Moby-Dick (first 4096 tokens):"
  "$PY" -m lesa_py.eval "$m" --text "$FIX/text/moby-dick.txt" --max-tokens 4096 --quiet
done
