#!/usr/bin/env bash
# Expansion methods compared end to end (lesa compare): expand, initial ppl, short CPT, report.
#
#   bench/compare.sh smollm2   # SmolLM2-135M 30 -> 45, all six methods (solar at 44: 45 is odd)
#   bench/compare.sh gemma     # Gemma-3-270M 18 -> 27 (solar at 26: 27 is odd)
#
# Reports land in bench/results/compare-<model>/ (report.md, results.json, PNGs,
# runs/<method>/log.jsonl; the expanded models are deleted).
# The budget is sized for a shared 2-core CPU box (~40 min per model): override any
# option by appending it, e.g. `bench/compare.sh smollm2 --steps 200`.
# Environment: PY (python with torch; default: scripts/setup_python.sh --print-python).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FX="${LESA_FIXTURES:-$HOME/.cache/lesa/fixtures}"
PY="${PY:-$(bash "$ROOT/scripts/setup_python.sh" --print-python)}"
which="${1:?usage: bench/compare.sh smollm2|gemma [extra compare options]}"
shift
[ -f "$ROOT/dist/src/cli/bin.js" ] || (cd "$ROOT" && npx tsc -p tsconfig.json)

# CPU budget (see report.md): 1 torch thread (5x faster than 2 on the loaded box),
# 256 tokens/step, held-out eval every 5 steps on 1024 tokens, LESA predictors 3 epochs
# (their loss is flat after epoch 3 on SmolLM2).
BUDGET=(--steps 20 --seq-len 128 --batch 2 --lr 1e-4 --eval-every 5 --eval-tokens 1024
        --eval-max-tokens 1024 --seed 0 --lesa-epochs 3 --threads 1 --freeze original)
case "$which" in
  smollm2) args=("$FX/smollm2-135m" --target-layers 45 --solar-target 44 --out "$ROOT/bench/results/compare-smollm2-135m"
                 --methods lesa,copy,llama-pro,average,random,solar) ;;
  gemma)   args=("$FX/gemma3-270m" --target-layers 27 --solar-target 26 --out "$ROOT/bench/results/compare-gemma3-270m"
                 --methods lesa,copy,llama-pro,average,random,solar) ;;
  *) echo "unknown model '$which' (smollm2|gemma)" >&2; exit 2 ;;
esac
cd "$ROOT/python"
exec "$PY" -m lesa_py.compare "${args[@]}" \
  --train "$FX/text-docs/sotu.jsonl" --eval "$FX/text/moby-dick.txt" "${BUDGET[@]}" "$@"
