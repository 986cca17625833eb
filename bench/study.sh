#!/usr/bin/env bash
# Issue 12's study: every method on one model, the same budget and seeds, with `lesa compare`;
# then the seeds table (bench/seeds_table.py: winner only beyond the seed spread, else tie) and
# the plots over seeds (python -m lesa_py.plots). Every stage adds to its report with
# `compare --resume`, so the study runs in stages and a killed stage is re-run.
#
#   bench/study.sh MODEL run [SEED ...]      # each seed's methods (default: seeds 0..4), resumable
#   bench/study.sh MODEL seed N [SPECS]      # one seed (SPECS default: the methods that seed needs)
#   bench/study.sh MODEL table               # OUT/summary.md and the PNGs over seeds
#   bench/study.sh MODEL plan                # print every command, run nothing
#
# MODEL: smollm2 (SmolLM2-135M 30 -> 45) | gemma (Gemma-3-270M 18 -> 27) | tiny (tiny-llama-f32 8 -> 10,
# the smoke test's). Seed 0 writes OUT/results.json, seed N OUT/seed-N/results.json.
# PROFILE: cpu (default: this 2-core machine) | gpu (bench/study_gpu.sh: one H200) | smoke (seconds, CPU).
# Environment overrides: OUT, DTYPE (f32|bf16), THREADS, PY, LESA_MATCHED, PAR (seeds run at once).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FX="${LESA_FIXTURES:-$HOME/.cache/lesa/fixtures}"
PY="${PY:-$(bash "$ROOT/scripts/setup_python.sh" --print-python)}"
which="${1:?usage: bench/study.sh smollm2|gemma|tiny run|seed|table|plan ...}"; shift
stage="${1:?stage: run|seed|table|plan}"; shift
PROFILE="${PROFILE:-cpu}"
case "$which" in
  smollm2) name=smollm2-135m; src="$FX/smollm2-135m"; target=45; solar=44 ;;
  gemma)   name=gemma3-270m;  src="$FX/gemma3-270m";  target=27; solar=26 ;;
  tiny)    name=tiny-llama;   src="$FX/tiny-llama-f32"; target=10; solar=10 ;;
  *) echo "unknown model '$which' (smollm2|gemma|tiny)" >&2; exit 2 ;;
esac

# -- the protocol (docs/study.md "Protocol") ---------------------------------------------------
# Budgets: tokens per run = steps x batch x seq-len. CPU: 25 x 4 x 512 = 51 200 (>= 50 000);
# GPU: 160 x 32 x 1024 = 5 242 880 (>= 5 M). Windows of 512/1024 tokens start with BOS where the
# model's tokenizer adds one (lesa_py.data); held-out loss on 8 192 / 65 536 tokens.
case "$PROFILE" in
  cpu)   BUDGET=(--steps 25 --seq-len 512 --batch 4 --eval-every 5 --eval-tokens 8192 --eval-max-tokens 8192
                 --device cpu --threads "${THREADS:-2}" --dtype "${DTYPE:-f32}")
         OUT="${OUT:-$ROOT/bench/results/study-$name-v2}" ;;
  gpu)   BUDGET=(--steps 160 --seq-len 1024 --batch 32 --eval-every 20 --eval-tokens 65536 --eval-max-tokens 65536
                 --device cuda --dtype "${DTYPE:-bf16}")
         OUT="${OUT:-$ROOT/bench/results/study-gpu-$name}" ;;
  smoke) BUDGET=(--steps 2 --seq-len 32 --batch 2 --eval-every 1 --eval-tokens 128 --eval-max-tokens 128
                 --device cpu --threads 1 --dtype "${DTYPE:-f32}")
         OUT="${OUT:?PROFILE=smoke needs OUT}" ;;
  *) echo "unknown PROFILE '$PROFILE' (cpu|gpu|smoke)" >&2; exit 2 ;;
esac
COMMON=(--target-layers "$target" --solar-target "$solar" --lr 1e-4 --freeze original
        --train "$FX/text/sotu.txt" --eval "$FX/text/moby-dick.txt")

# Methods. LESA runs as the notebooks do (10 epochs, layer 0's norms) and step-matched: its
# predictors get the optimizer steps a Llama-3-8B type would (q/o/down_proj: 4096 rows x 30
# interior layers / 64 x 10 epochs = 19 200; `--predictor-steps`, another engineer's option:
# until it lands that expand fails with exit 2 and the report records it as not applicable).
LESA_NB="lesa+epochs=10+layer0-fill"
LESA_MATCHED="${LESA_MATCHED:-lesa+predictor-steps=19200+layer0-fill}"
PAPER="llama-pro,solar,$LESA_NB,$LESA_MATCHED"
VARIANTS="lesa+zero-out+epochs=10+layer0-fill,lesa+align+epochs=10+layer0-fill"
OTHERS="ot-fuse,llama-pro@bottom"  # llama-pro@bottom: `lesa expand`'s default today
CONTROLS="random,rand-svd"         # random gets --match-norm from lesa compare; rand-svd is norm-matched
OPTIONAL="${OPTIONAL:-}"           # e.g. OPTIONAL=copy,average
ALL="$PAPER,$VARIANTS,$OTHERS,$CONTROLS${OPTIONAL:+,$OPTIONAL}"
LESA_ONLY="$LESA_NB,$LESA_MATCHED,lesa+zero-out+epochs=10+layer0-fill,lesa+align+epochs=10+layer0-fill"
SEEDS=(0 1 2)          # every method
LESA_SEEDS=(3 4)       # LESA (its initial ppl is a seed lottery) gets >= 5: these two more
[ "$PROFILE" = smoke ] && { ALL="${SMOKE_METHODS:-llama-pro,random}"; LESA_ONLY="${SMOKE_LESA:-llama-pro}"; SEEDS=(0); LESA_SEEDS=(1); }

seed_out() { if [ "$1" = 0 ]; then echo "$OUT"; else echo "$OUT/seed-$1"; fi; }
specs_for() { case " ${SEEDS[*]} " in *" $1 "*) echo "$ALL" ;; *) echo "$LESA_ONLY" ;; esac; }
compare_cmd() {  # seed specs
  echo "$PY" -m lesa_py.compare "$src" --out "$(seed_out "$1")" --seed "$1" --methods "$2" --resume \
    "${COMMON[@]}" "${BUDGET[@]}"
}
run_seed() {
  local cmd; cmd=$(compare_cmd "$1" "${2:-$(specs_for "$1")}")
  mkdir -p "$(seed_out "$1")"
  echo "[study $(date -u +%H:%M:%S)] seed $1: $cmd" >&2
  (cd "$ROOT/python" && $cmd) || echo "[study] seed $1 ended with status $? (partial report kept; re-run to resume)" >&2
}

[ -f "$ROOT/dist/src/cli/bin.js" ] || (cd "$ROOT" && npx tsc -p tsconfig.json)
case "$stage" in
  plan)
    for s in "${SEEDS[@]}" "${LESA_SEEDS[@]}"; do compare_cmd "$s" "$(specs_for "$s")"; done ;;
  seed)
    run_seed "${1:?seed}" "${2:-}" ;;
  run)
    seeds=("$@"); [ ${#seeds[@]} -gt 0 ] || seeds=("${SEEDS[@]}" "${LESA_SEEDS[@]}")
    par="${PAR:-1}"
    for s in "${seeds[@]}"; do
      run_seed "$s" &
      while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n || true; done
    done
    wait
    exec bash "$0" "$which" table ;;
  table)
    (cd "$ROOT/python" && "$PY" -m lesa_py.plots "$OUT" >/dev/null)
    "$PY" "$ROOT/bench/seeds_table.py" "$OUT" --out "$OUT/summary.md" ;;
  *) echo "unknown stage '$stage' (run|seed|table|plan)" >&2; exit 2 ;;
esac
