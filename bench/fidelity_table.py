"""Side-by-side leave-one-layer-out figures: lesa (native) vs the PyTorch oracle.

    node dist/src/cli/bin.js analyze CKPT --layers 5,15,25 --epochs 10 --json > lesa.json
    python -m lesa_py.testing.oracle loo CKPT --layers 5 15 25 --epochs 10 --threads 1 --json > oracle.json
    python bench/fidelity_table.py lesa.json oracle.json > bench/results/fidelity.md
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(lesa_path: str, oracle_path: str) -> None:
    ours = json.load(open(lesa_path))
    ref = json.load(open(oracle_path))
    ref_rows = ref["rows"] if isinstance(ref, dict) else ref
    o = defaultdict(lambda: defaultdict(list))
    for r in ref_rows:
        o[r["type"]][r["method"]].append(r)
    u = defaultdict(lambda: defaultdict(list))
    for r in ours["rows"]:
        for m in ("lesa", "copy", "average", "random"):
            u[r["type"]][m].append(r[m])
    mean = lambda xs, k: sum(x[k] for x in xs) / len(xs)
    print("# Fidelity: lesa's native LESA vs the PyTorch oracle (leave-one-layer-out)\n")
    print(f"Checkpoint: {ours['checkpoint']}; layers {ours['options']['layers']}; epochs {ours['options']['epochs']}; "
          f"lambda {ours['options']['lambda']}; hidden {ours['options']['hidden']}; both seeded (different RNGs). "
          "Basis includes the left-out layer. Cells: mean relative error / cosine / norm ratio.\n")
    print("| type | lesa (native) | lesa (oracle) | rel. diff of error | copy | average | random |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for t in ours["options"]["types"]:
        a, b = u[t]["lesa"], o[t]["lesa"]
        ea, eb = mean(a, "relError"), mean(b, "rel_err")
        worst = max(worst, abs(ea - eb) / eb)
        cell = lambda xs, e, c, n: f"{mean(xs, e):.3f} / {mean(xs, c):+.4f} / {mean(xs, n):.3f}"
        print(f"| {t} | {cell(a, 'relError', 'cosine', 'normRatio')} | {cell(b, 'rel_err', 'cosine', 'norm_ratio')} | "
              f"{abs(ea - eb) / eb * 100:.1f}% | {cell(u[t]['copy'], 'relError', 'cosine', 'normRatio')} | "
              f"{cell(u[t]['average'], 'relError', 'cosine', 'normRatio')} | {cell(u[t]['random'], 'relError', 'cosine', 'normRatio')} |")
    print(f"\nLargest relative difference between the two implementations' mean errors: {worst * 100:.1f}% (goal ≤ 5%).")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
