"""Wall-time estimate of bench/study.sh (CPU profile) from measured step times.

    python bench/study_estimate.py CPT_DTYPE.json [--gemma-factor 2.0]

CPT_DTYPE.json: bench/cpt_dtype.py's output for SmolLM2 45 layers at the study's window and batch
(512 x 4). Per run: 25 training steps, 6 held-out evaluations of 8 192 tokens and the initial
perplexity on 8 192 tokens (forward passes, counted as half a training step per 2 048 tokens:
an assumption, no backward), plus the expansion (EXPAND_S: measured in issue 7's study and
bench/results/lesa-vs-oracle.md, scaled from 3 to 10 predictor epochs). Gemma-3-270M is scaled
by --gemma-factor (its 262k-token vocabulary makes the output layer cost about as much as the
rest; an assumption until measured). Prints markdown.
"""
from __future__ import annotations

import argparse
import json

STEPS, EVALS, HELD, TOKENS_PER_STEP = 25, 6, 8192, 2048
# Expansion seconds per method spec on SmolLM2 (see the docstring); LESA step-matched: 19 200
# predictor steps for each of 7 types vs 22 680 steps in all at 10 epochs -> x5.9 the train phase.
EXPAND_S = {"llama-pro": 5, "solar": 5, "lesa+epochs=10+layer0-fill": 100, "lesa+predictor-steps=19200+layer0-fill": 530,
            "lesa+zero-out+epochs=10+layer0-fill": 100, "lesa+align+epochs=10+layer0-fill": 130, "ot-fuse": 70,
            "llama-pro@bottom": 5, "random": 10, "rand-svd": 30}
LESA = [m for m in EXPAND_S if m.startswith("lesa")]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("measured", type=argparse.FileType())
    p.add_argument("--gemma-factor", type=float, default=2.0)
    a = p.parse_args()
    m = json.load(a.measured)
    dtype = "bf16" if m["bf16"]["median_s"] < m["f32"]["median_s"] else "f32"
    step = m[dtype]["median_s"]
    fwd = step / 2 * HELD / TOKENS_PER_STEP
    per_run_cpt = STEPS * step + (EVALS + 1) * fwd
    runs = {s: 3 + (2 if s in LESA else 0) for s in EXPAND_S}
    smol = sum(n * (per_run_cpt + EXPAND_S[s]) for s, n in runs.items())
    gemma = sum(n * (per_run_cpt * a.gemma_factor + EXPAND_S[s] * 1.5) for s, n in runs.items())
    print(f"- measured step ({dtype}, 4 x 512 tokens, SmolLM2 45 layers, load {m['loadavg']}): {step:.1f} s; "
          f"per run: CPT {per_run_cpt / 60:.1f} min + expansion")
    print(f"- runs per model: {sum(runs.values())} ({len(runs)} specs x 3 seeds, LESA's 4 specs x 2 more)")
    print(f"- SmolLM2: {smol / 3600:.1f} h; Gemma (x{a.gemma_factor:g} CPT, x1.5 expansion): {gemma / 3600:.1f} h; "
          f"both: {(smol + gemma) / 3600:.1f} h")


if __name__ == "__main__":
    main()
