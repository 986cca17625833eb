"""Mean ± standard deviation over seeds of `lesa compare` results (issue 7's study).

    python bench/seeds_table.py bench/results/study-smollm2-135m [--out summary.md]

Reads DIR/results.json (seed 0) and DIR/seed-*/results.json, and prints a markdown table of
the final held-out loss per method: every seed's value, mean ± sample sd for methods with
≥ 2 seeds, and the winner's margin over the runner-up as a paired difference (same seeds,
same data order) with its sd and the number of seeds where the winner was ahead.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics as st
from pathlib import Path


def load(d: Path) -> dict[int, dict]:
    out = {}
    for f in [d / "results.json", *sorted(d.glob("seed-*/results.json"))]:
        if f.is_file():
            r = json.loads(f.read_text())
            out[r["settings"]["seed"]] = r
    return out


def table(d: Path) -> str:
    runs = load(d)
    seeds = sorted(runs)
    per: dict[str, dict[int, float]] = {}
    ppl: dict[str, dict[int, float]] = {}
    for s, r in runs.items():
        for m, rec in r["runs"].items():
            if rec.get("status") == "ok" and rec.get("final_eval_loss") is not None and math.isfinite(rec["final_eval_loss"]):
                per.setdefault(m, {})[s] = rec["final_eval_loss"]
                ppl.setdefault(m, {})[s] = rec.get("initial_ppl")
    orig = runs[seeds[0]]["original"].get("heldout_loss")
    fmt = lambda x: "n/a" if x is None else f"{x:.4f}"
    def key(m):  # rank by the mean over the seeds the method has
        return st.mean(per[m].values())
    ranked = sorted(per, key=key)
    lines = [f"Final held-out loss (nats/token, lower is better) after the CPT budget; seeds {', '.join(map(str, seeds))}; "
             f"original model {fmt(orig)}.", "",
             "| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd | initial ppl (seed 0) |",
             "|---|" + "---:|" * len(seeds) + "---:|---:|"]
    for m in ranked:
        v = per[m]
        ms = f"{st.mean(v.values()):.4f} ± {st.stdev(v.values()):.4f}" if len(v) >= 2 else f"{st.mean(v.values()):.4f} (1 seed)"
        p0 = ppl[m].get(seeds[0])
        lines.append(f"| {m} | " + " | ".join(fmt(v.get(s)) for s in seeds) + f" | {ms} | "
                     + ("n/a" if p0 is None else (f"{p0:.3e}" if p0 >= 1e5 else f"{p0:.2f}")) + " |")
    multi = [m for m in ranked if len(per[m]) >= 2]
    if len(multi) >= 2:
        a, b = multi[0], multi[1]
        common = sorted(set(per[a]) & set(per[b]))
        diffs = [per[b][s] - per[a][s] for s in common]
        sd = st.stdev(diffs) if len(diffs) >= 2 else float("nan")
        wins = sum(x > 0 for x in diffs)
        lines += ["", f"Winner among methods with ≥ 2 seeds: **{a}**; margin over {b}: "
                      f"{st.mean(diffs):+.4f} ± {sd:.4f} nats/token (paired over seeds {common}; sd of the "
                      f"per-seed differences), ahead in {wins} of {len(diffs)} seeds."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    t = table(a.dir)
    if a.out:
        a.out.write_text(t)
    print(t, end="")


if __name__ == "__main__":
    main()
