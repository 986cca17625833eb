#!/usr/bin/env bash
# The main job on the bundled default: grow SmolLM2-135M-Instruct from 30 to 45 layers
# with LESA (the notebooks' settings, seeds 0-2) and with the default method (llama-pro,
# bottom placement), verify each output against its manifest, load it in transformers, and
# compare held-out perplexity (Moby-Dick) before and after; then ask whether LESA's
# predictions carry information about a held-out layer (lesa analyze --information).
# Output: ./out/smollm2-135m-lesa-45 (seed 0), ./out/smollm2-135m-default-45
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FIX="$(bash scripts/setup.sh | tail -n 1)"
PY="$(bash scripts/setup_python.sh --print-python)"
OUT="${1:-out/smollm2-135m-lesa-45}"
SEEDS=(0 1 2)
lesa() { node dist/src/cli/bin.js "$@"; }
ppl() { "$PY" -m lesa_py.eval "$1" --text "$FIX/text/moby-dick.txt" --max-tokens 4096 --quiet --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["ppl"])'; }

DEF="${OUT%-lesa-45}-default-45"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/lesa-main-XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
lesa inspect "$FIX/smollm2-135m"
lesa expand "$FIX/smollm2-135m" -o "$OUT" --method lesa --target-layers 45 --seed "${SEEDS[0]}" --force
lesa expand "$FIX/smollm2-135m" -o "$DEF" --target-layers 45 --force   # the default method (docs/study.md)
for m in "$OUT" "$DEF"; do
  lesa verify "$m"
  "$PY" -m lesa_py.testing.hfcheck "$m"
done
echo "perplexity on held-out Moby-Dick (first 4096 tokens):"
echo "  original $FIX/smollm2-135m: $(ppl "$FIX/smollm2-135m")"
echo "  default method $DEF: $(ppl "$DEF")"
LESA_PPL=("$(ppl "$OUT")")
echo "  lesa seed ${SEEDS[0]} $OUT: ${LESA_PPL[0]}"
for s in "${SEEDS[@]:1}"; do   # the seed lottery: other seeds, written to a temporary directory
  lesa expand "$FIX/smollm2-135m" -o "$TMP/lesa-$s" --method lesa --target-layers 45 --seed "$s" --quiet
  LESA_PPL+=("$(ppl "$TMP/lesa-$s")")
  echo "  lesa seed $s: ${LESA_PPL[-1]}"
  rm -rf "$TMP/lesa-$s"
done
"$PY" -c 'import statistics,sys; x=[float(v) for v in sys.argv[2:]]; print(f"  lesa over seeds {sys.argv[1]}: median {statistics.median(x):.2f}, range {min(x):.2f}-{max(x):.2f}")' "${SEEDS[*]}" "${LESA_PPL[@]}"
# Does LESA carry information on this model? One held-out layer of v_proj, LESA at the notebook
# budget and at Llama-3-8B's step count beside rand-svd and random (bench/results/lesa-information.md).
lesa analyze "$FIX/smollm2-135m" --information --types v_proj --layers 15 --quiet
