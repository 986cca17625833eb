#!/usr/bin/env bash
# Issue 7's study: every method (paper baselines, LESA and its variants, ot-fuse) on one
# model with `lesa compare`'s fixed budget, then placements and extra seeds. Each call adds
# runs to the same report (compare --resume), so a stage can be re-run or extended.
#
#   bench/study.sh smollm2 methods [SPEC,...]     # seed 0, into bench/results/study-smollm2-135m
#   bench/study.sh smollm2 seed 1 SPEC,...         # another seed, into .../seed-1
#   bench/study.sh smollm2 placement               # ot-fuse and average+align at four placements
#
# SPEC is a compare method spec: NAME[+zero-out|+align...][@top|uniform|bottom|after=I:J:K].
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
which="${1:?usage: bench/study.sh smollm2|gemma methods|seed|placement ...}"; shift
stage="${1:?stage: methods|seed|placement}"; shift
case "$which" in
  smollm2) name=smollm2-135m; src="$HOME/.cache/lesa/fixtures/smollm2-135m"; n=15 ;;
  gemma)   name=gemma3-270m;  src="$HOME/.cache/lesa/fixtures/gemma3-270m";  n=9 ;;
  *) echo "unknown model '$which'" >&2; exit 2 ;;
esac
out="$ROOT/bench/results/study-$name"
ALL="llama-pro,solar,random,average,copy,ot-fuse,average+align,lesa+zero-out,lesa,lesa+align"
case "$stage" in
  methods) exec bash "$ROOT/bench/compare.sh" "$which" --out "$out" --methods "${1:-$ALL}" --resume ;;
  seed)    seed="${1:?seed}"; exec bash "$ROOT/bench/compare.sh" "$which" --out "$out/seed-$seed" --seed "$seed" --methods "${2:?methods}" --resume ;;
  placement)
    # "predictable": the gaps whose layers are best predicted by their aligned neighbours' mean
    after=$(node "$ROOT/dist/src/cli/bin.js" analyze "$src" --align --gaps "$n" --json --quiet |
            python3 -c 'import json,sys; print(":".join(map(str, json.load(sys.stdin)["after"])))')
    specs=""
    for m in ${1:-ot-fuse average+align}; do
      specs+="$m@uniform,$m@bottom,$m@after=$after,"
    done
    exec bash "$ROOT/bench/compare.sh" "$which" --out "$out" --methods "${specs%,}" --resume ;;
  *) echo "unknown stage '$stage'" >&2; exit 2 ;;
esac
