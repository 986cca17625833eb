"""Markdown table of `lesa analyze --information --json` outputs (one per type, held-out layer and seed).

    python bench/lesa_information_table.py OUT/*.json

One seed per (type, layer): the values. Several seeds: per guess, median and [min, max] over the
seeds of cosine, norm ratio and σ₁/‖Ŵ‖_F, and a verdict per LESA budget on the cosine:
"indistinguishable" when LESA's [min, max] overlaps the controls' (rand-svd and random together),
otherwise the gap between the ranges beside the controls' spread (max - min).
"""
from __future__ import annotations

import json
import statistics as st
import sys

GUESSES = {"lesa": "LESA, notebook budget", "lesa-step-matched": "LESA, Llama-3-8B steps", "rand-svd": "rand-svd", "random": "random (size-matched)"}
CONTROLS = ("rand-svd", "random")
METRICS = {"cosine": "cos(Ŵ,W)", "normRatio": "‖Ŵ‖/‖W‖", "sigma1Share": "σ₁/‖Ŵ‖_F"}


def load(paths: list[str]) -> dict[tuple[str, int], dict]:
    """(type, layer) -> {"steps": {...}, "truth": shape, "seeds": {seed: guesses}}."""
    groups: dict[tuple[str, int], dict] = {}
    for p in paths:
        d = json.load(open(p))
        seed = d["options"]["seed"]
        for r in d["rows"]:
            g = groups.setdefault((r["type"], r["layer"]), {"steps": d["steps"][r["type"]], "truth": r["truth"], "seeds": {}})
            if seed in g["seeds"]:
                raise SystemExit(f"{p}: seed {seed} of {r['type']} layer {r['layer']} given twice")
            g["seeds"][seed] = r["guesses"]
    return groups


def summary(values: list[float]) -> dict[str, float]:
    return {"median": st.median(values), "min": min(values), "max": max(values)}


def verdict(lesa: list[float], controls: list[float]) -> str:
    lo, hi = min(controls), max(controls)
    spread = hi - lo
    if min(lesa) <= hi and max(lesa) >= lo:
        return f"indistinguishable (LESA [{min(lesa):+.3f}, {max(lesa):+.3f}] overlaps the controls' [{lo:+.3f}, {hi:+.3f}])"
    gap = min(lesa) - hi if min(lesa) > hi else lo - max(lesa)
    side = "above" if min(lesa) > hi else "below"
    return f"{side} the controls by {gap:.4f} (controls' spread {spread:.4f}, {gap / spread:.2f}× it)" if spread > 0 else f"{side} the controls by {gap:.4f}"


def single_table(groups: dict) -> list[str]:
    out = ["| type | held-out layer | guess | steps | cos(Ŵ,W) | ‖Ŵ‖/‖W‖ | mean-row share | σ₁/‖Ŵ‖_F |", "|---|---|---|---|---|---|---|---|"]
    for (type_, layer), g in sorted(groups.items()):
        t = g["truth"]
        out.append(f"| {type_} | {layer} | truth W | | 1 | 1 | {t['meanRowShare']:.3f} | {t['sigma1Share']:.3f} |")
        (guesses,) = g["seeds"].values()
        for name, label in GUESSES.items():
            x = guesses[name]
            out.append(f"| | | {label} | {g['steps'].get(name, '')} | {x['cosine']:+.3f} | {x['normRatio']:.3f} | {x['meanRowShare']:.3f} | {x['sigma1Share']:.3f} |")
    return out


def seeds_table(groups: dict) -> list[str]:
    cell = lambda s, sign: f"{s['median']:{sign}.3f} [{s['min']:{sign}.3f}, {s['max']:{sign}.3f}]"  # noqa: E731
    out = ["| type | held-out layer | guess | steps | seeds | " + " | ".join(f"{h} median [min, max]" for h in METRICS.values()) + " |",
           "|---|---|---|---|---|" + "---|" * len(METRICS)]
    verdicts = []
    for (type_, layer), g in sorted(groups.items()):
        seeds = sorted(g["seeds"])
        t = g["truth"]
        out.append(f"| {type_} | {layer} | truth W | | | +1 | 1 | {t['sigma1Share']:.3f} |")
        for name, label in GUESSES.items():
            cells = [cell(summary([g["seeds"][s][name][m] for s in seeds]), "+" if m == "cosine" else "") for m in METRICS]
            out.append(f"| | | {label} | {g['steps'].get(name, '')} | {','.join(map(str, seeds))} | " + " | ".join(cells) + " |")
        controls = [g["seeds"][s][c]["cosine"] for s in seeds for c in CONTROLS]
        for name in ("lesa", "lesa-step-matched"):
            verdicts.append(f"- {type_} layer {layer}, {GUESSES[name]}: {verdict([g['seeds'][s][name]['cosine'] for s in seeds], controls)}")
    return out + [""] + verdicts


def main(paths: list[str]) -> None:
    groups = load(paths)
    several = any(len(g["seeds"]) > 1 for g in groups.values())
    print("\n".join(seeds_table(groups) if several else single_table(groups)))


if __name__ == "__main__":
    main(sys.argv[1:])
