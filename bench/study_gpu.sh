#!/usr/bin/env bash
# The study of bench/study.sh on one GPU (H200-sized): the same methods, seeds and protocol at
# >= 5 M CPT tokens per run (160 steps x 32 x 1024 tokens, bf16 autocast, held-out 65 536 tokens).
#
#   bench/study_gpu.sh smollm2|gemma [run|plan|table]    # default: run (then the table)
#
# PAR (default 4) seeds run at once on the one GPU: the models are small (135M/270M), one run
# alone leaves most of an H200 idle. Reports: bench/results/study-gpu-<model>/.
# The expansions themselves (LESA's SVD and predictors) run on the CPU cores of the GPU machine.
# Estimated time: docs/study.md, "Plan".
set -euo pipefail
which="${1:?usage: bench/study_gpu.sh smollm2|gemma [run|plan|table]}"
stage="${2:-run}"
PROFILE=gpu PAR="${PAR:-4}" exec bash "$(dirname "$0")/study.sh" "$which" "$stage" "${@:3}"
