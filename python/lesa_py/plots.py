"""PNG plots for `lesa_py.compare` (matplotlib, Agg backend, no display needed).

`write_all(results, out_dir)` writes three files and returns {key: file name}:

* ``heldout_loss.png`` -- held-out loss vs CPT step, one line per method, the
  original model as a dashed reference;
* ``train_loss.png``   -- training loss vs step, exponentially smoothed;
* ``initial_ppl.png``  -- initial perplexity bars (log scale), original included.
"""
from __future__ import annotations

import math
from pathlib import Path

COLORS = {"lesa": "#d62728", "copy": "#1f77b4", "llama-pro": "#2ca02c", "average": "#9467bd",
          "random": "#7f7f7f", "solar": "#ff7f0e", "stack": "#8c564b"}


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


def heldout(results: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m, r in _ok(results).items():
        xs, ys = zip(*r["eval_curve"]) if r["eval_curve"] else ((), ())
        ax.plot(xs, ys, marker="o", ms=3, label=m, color=COLORS.get(m), lw=2.2 if m == "lesa" else 1.4)
    ref = results.get("original", {}).get("heldout_loss")
    if ref is not None:
        ax.axhline(ref, ls="--", color="black", lw=1, label=f"original ({ref:.3f})")
    _spread(ax)
    ax.set_xlabel("CPT step")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title(_title(results, "held-out loss"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(results: dict, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m, r in _ok(results).items():
        if not r["train_curve"]:
            continue
        xs, ys = zip(*r["train_curve"])
        ax.plot(xs, ema(list(ys)), label=m, color=COLORS.get(m), lw=2.2 if m == "lesa" else 1.4)
    _spread(ax)
    ax.set_xlabel("CPT step")
    ax.set_ylabel("training loss (EMA, alpha 0.2)")
    ax.set_title(_title(results, "training loss"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def initial(results: dict, path: Path) -> None:
    plt = _plt()
    names, vals, colors = [], [], []
    o = results.get("original", {}).get("initial_ppl")
    if o is not None:
        names.append("original")
        vals.append(o)
        colors.append("black")
    for m, r in results["runs"].items():
        p = r.get("initial_ppl")
        if p is not None and math.isfinite(p):
            names.append(m)
            vals.append(p)
            colors.append(COLORS.get(m, "#17becf"))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bars = ax.bar(names, vals, color=colors)
    ax.set_yscale("log")
    for b, v in zip(bars, vals):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("initial held-out perplexity (log scale)")
    ax.set_title(_title(results, "initial perplexity"))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results: dict, out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    files = {"heldout": "heldout_loss.png", "train": "train_loss.png", "initial": "initial_ppl.png"}
    heldout(results, out_dir / files["heldout"])
    train(results, out_dir / files["train"])
    initial(results, out_dir / files["initial"])
    return files
