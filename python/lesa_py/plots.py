"""PNG plots for `lesa_py.compare` (matplotlib, Agg backend, no display needed).

`write_all(results, out_dir, seeds=())` writes three files and returns {key: file name}:

* ``heldout_loss.png`` -- held-out loss vs CPT step, one panel per group of methods (paper
  baselines / identity starts / LESA variants / controls / other heuristics), the original
  model as a dashed reference line in each; with more seeds (``seeds``: the other seeds'
  results), the line is the median over seeds and a shaded band their range;
* ``train_loss.png``   -- training loss vs step (exponentially smoothed), same panels;
* ``initial_ppl.png``  -- initial perplexity bars (log scale), original included.

Every method keeps one colour and one marker in all three figures; legends sit outside the axes.

    python -m lesa_py.plots DIR   # DIR/results.json + DIR/seed-*/results.json -> DIR/*.png
"""
from __future__ import annotations

import json
import math
import statistics as st
import sys
from pathlib import Path
from typing import Iterable, Optional

# tab10 then the light half of tab20: 20 distinguishable colours; markers cycle on a different period.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p", "d"]
GROUPS = ("paper baselines", "identity starts", "LESA variants", "controls", "other heuristics")


def group(spec: str) -> str:
    """The panel a compare method spec (NAME[+VARIANT...][@PLACEMENT]) belongs to."""
    head, _, place = spec.partition("@")
    name, *variants = head.split("+")
    if name == "lesa" and "zero-out" not in variants:
        return "LESA variants"
    if "zero-out" in variants or (name == "llama-pro" and place not in ("", "top")):
        return "identity starts"
    if name in ("llama-pro", "solar", "stack"):
        return "paper baselines"
    if name in ("random", "rand-svd", "copy", "average") and not variants and place in ("", "top"):
        return "controls"
    return "other heuristics"


def styles(methods: Iterable[str]) -> dict[str, tuple[str, str]]:
    """method -> (colour, marker), distinct pairs, stable for a given set of methods."""
    out = {}
    for i, m in enumerate(sorted(set(methods), key=lambda m: (GROUPS.index(group(m)), m))):
        out[m] = (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)])
    return out


def short(spec: str) -> str:
    """A legend label: long explicit placements (after=9:10:...:28) abbreviated."""
    head, _, place = spec.partition("@")
    if place.startswith("after="):
        pos = place[len("after="):].split(":")
        if len(pos) > 4:
            place = f"after={pos[0]}:{pos[1]}:…:{pos[-1]} ({len(pos)} gaps)"
    return f"{head}@{place}" if place else head


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ema(xs: list[float], alpha: float = 0.2) -> list[float]:
    """Bias-corrected exponential moving average (the first point is not dragged to 0)."""
    out, m, w = [], 0.0, 0.0
    for x in xs:
        m = (1 - alpha) * m + alpha * x
        w = (1 - alpha) * w + alpha
        out.append(m / w)
    return out


def _ok(results: dict) -> dict:
    return {m: r for m, r in results["runs"].items() if r.get("status") == "ok"}


def _title(results: dict, what: str) -> str:
    return f"{Path(results['model']).name} {results['source_layers']}->{results['target_layers']}: {what}"


def _spread(ax) -> None:
    """Log y-axis when the curves span more than 3x (a broken init next to near-original
    ones would otherwise flatten the interesting ones into one line)."""
    ys = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    if ys and max(ys) / min(ys) > 3:
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")


def seed_curves(all_results: list[dict], key: str, smooth: bool = False) -> dict[str, list[tuple[int, float, float, float, int]]]:
    """method -> [(step, median, min, max, seeds)] over the results (one per seed) that ran it."""
    per: dict[str, list[dict[int, float]]] = {}
    for res in all_results:
        for m, r in _ok(res).items():
            curve = r.get(key) or []
            if not curve:
                continue
            xs, ys = zip(*curve)
            per.setdefault(m, []).append(dict(zip(xs, ema(list(ys)) if smooth else ys)))
    out = {}
    for m, runs in per.items():
        steps = sorted(set.intersection(*(set(c) for c in runs)))
        out[m] = [(s, st.median(c[s] for c in runs), min(c[s] for c in runs), max(c[s] for c in runs), len(runs))
                  for s in steps]
    return out


def _panels(results: dict, seeds: list[dict], path: Path, key: str, ylabel: str, what: str, smooth: bool) -> None:
    plt = _plt()
    curves = seed_curves([results, *seeds], key, smooth)
    if not curves:
        return
    style = styles(curves)
    groups = [g for g in GROUPS if any(group(m) == g for m in curves)]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 3.2 * len(groups)), sharex=True, squeeze=False)
    ref = results.get("original", {}).get("heldout_loss") if key == "eval_curve" else None
    n_seeds = 1 + len(seeds)
    for ax, g in zip(axes[:, 0], groups):
        for m in sorted((m for m in curves if group(m) == g), key=lambda m: (style[m][0], m)):
            rows = curves[m]
            xs = [r[0] for r in rows]
            colour, marker = style[m]
            k = rows[0][4]
            label = short(m) if n_seeds == 1 else f"{short(m)} ({'median, ' if k > 1 else ''}{k} seed{'s' if k > 1 else ''})"
            ax.plot(xs, [r[1] for r in rows], color=colour, marker=marker, ms=4, lw=1.6, label=label,
                    markevery=max(1, len(xs) // 12))
            if k > 1:
                ax.fill_between(xs, [r[2] for r in rows], [r[3] for r in rows], color=colour, alpha=0.18, lw=0)
        if ref is not None:
            ax.axhline(ref, ls="--", color="black", lw=1, label=f"original model ({ref:.3f})")
        _spread(ax)
        ax.set_title(g, loc="left", fontsize=10)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    axes[-1, 0].set_xlabel("CPT step")
    band = "" if n_seeds == 1 else "\nline: median over the seeds a method ran, band: their min-max"
    fig.suptitle(_title(results, what) + band, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def heldout(results: dict, path: Path, seeds: Iterable[dict] = ()) -> None:
    _panels(results, list(seeds), path, "eval_curve", "held-out loss (nats/token)", "held-out loss", False)


def train(results: dict, path: Path, seeds: Iterable[dict] = ()) -> None:
    _panels(results, list(seeds), path, "train_curve", "training loss (EMA 0.2)", "training loss", True)


def initial(results: dict, path: Path, seeds: Iterable[dict] = ()) -> None:
    plt = _plt()
    per: dict[str, list[float]] = {}
    for res in [results, *seeds]:
        for m, r in res["runs"].items():
            p = r.get("initial_ppl")
            if p is not None and math.isfinite(p):
                per.setdefault(m, []).append(p)
    style = styles(per)
    names = sorted(per, key=lambda m: (GROUPS.index(group(m)), m))
    fig, ax = plt.subplots(figsize=(max(7, 0.55 * len(names) + 2), 4.8))
    o = results.get("original", {}).get("initial_ppl")
    if o is not None:
        ax.axhline(o, ls="--", color="black", lw=1, label=f"original model ({o:.2f})")
    for i, m in enumerate(names):
        v = per[m]
        med = st.median(v)
        colour, marker = style[m]
        ax.bar(i, med, color=colour, alpha=0.85)
        if len(v) > 1:
            ax.errorbar(i, med, yerr=[[med - min(v)], [max(v) - med]], color="black", capsize=3, lw=1)
        ax.plot([i] * len(v), v, ls="none", marker=marker, color="black", ms=3)
        ax.text(i, max(v), f"{med:.3g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)), [short(m) for m in names], rotation=45, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("initial held-out perplexity (log)")
    ax.set_title(_title(results, "initial perplexity") + ("" if not seeds else ": bar median, whiskers range, dots seeds"),
                 fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if o is not None:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def write_all(results: dict, out_dir: Path, seeds: Iterable[dict] = ()) -> dict:
    out_dir = Path(out_dir)
    seeds = list(seeds)
    files = {"heldout": "heldout_loss.png", "train": "train_loss.png", "initial": "initial_ppl.png"}
    heldout(results, out_dir / files["heldout"], seeds)
    train(results, out_dir / files["train"], seeds)
    initial(results, out_dir / files["initial"], seeds)
    return files


def load_seeds(d: Path) -> tuple[dict, list[dict]]:
    """DIR/results.json and the DIR/seed-*/results.json beside it."""
    main = json.loads((Path(d) / "results.json").read_text())
    return main, [json.loads(f.read_text()) for f in sorted(Path(d).glob("seed-*/results.json"))]


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not (Path(argv[0]) / "results.json").is_file():
        print("usage: python -m lesa_py.plots DIR   (DIR/results.json, optional DIR/seed-*/results.json)", file=sys.stderr)
        return 2
    main_res, seeds = load_seeds(Path(argv[0]))
    print(json.dumps(write_all(main_res, Path(argv[0]), seeds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
