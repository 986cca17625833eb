"""Markdown table of `lesa analyze --information --json` outputs (one per type and held-out layer)."""
from __future__ import annotations

import json
import sys

GUESSES = {"lesa": "LESA, notebook budget", "lesa-step-matched": "LESA, Llama-3-8B steps", "rand-svd": "rand-svd", "random": "random (size-matched)"}


def main(paths: list[str]) -> None:
    rows = []
    for p in paths:
        d = json.load(open(p))
        for r in d["rows"]:
            rows.append((r["type"], r["layer"], d["steps"][r["type"]], r))
    rows.sort(key=lambda x: (x[0], x[1]))
    print("| type | held-out layer | guess | steps | cos(Ŵ,W) | ‖Ŵ‖/‖W‖ | mean-row share | σ₁/‖Ŵ‖_F |")
    print("|---|---|---|---|---|---|---|---|")
    for type_, layer, steps, r in rows:
        t = r["truth"]
        print(f"| {type_} | {layer} | truth W | | 1 | 1 | {t['meanRowShare']:.3f} | {t['sigma1Share']:.3f} |")
        for g, label in GUESSES.items():
            x = r["guesses"][g]
            print(f"| | | {label} | {steps.get(g, '')} | {x['cosine']:+.3f} | {x['normRatio']:.3f} | {x['meanRowShare']:.3f} | {x['sigma1Share']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
