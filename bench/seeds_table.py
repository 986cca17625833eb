"""Methods over seeds from `lesa compare` results (issue 12's study protocol).

    python bench/seeds_table.py bench/results/study-smollm2-135m [--out summary.md] [--json]

Reads DIR/results.json and DIR/seed-*/results.json (one `lesa compare` report per seed) and
prints a markdown table: per method, the final held-out loss of every seed as median [min, max],
the initial perplexity as median [min, max], and the margin to the best method, paired over the
seeds both ran (median [min, max] of the per-seed differences).

The verdict follows docs/study.md: the best method (lowest median final loss) is called the
winner over the runner-up only if, in every common seed, it is ahead by more than the seed
spread (the larger max - min of the two methods' final losses) and they share ≥ 3 seeds;
otherwise the table says "tie". The header states the budget, windows, seeds and machine.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics as st
from pathlib import Path

MIN_SEEDS = 3


def load(d: Path) -> dict[int, dict]:
    out = {}
    for f in [d / "results.json", *sorted(d.glob("seed-*/results.json"))]:
        if f.is_file():
            r = json.loads(f.read_text())
            out[r["settings"]["seed"]] = r
    return out


def per_method(runs: dict[int, dict]) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, float]]]:
    loss: dict[str, dict[int, float]] = {}
    ppl: dict[str, dict[int, float]] = {}
    for s, r in runs.items():
        for m, rec in r["runs"].items():
            x = rec.get("final_eval_loss")
            if rec.get("status") == "ok" and x is not None and math.isfinite(x):
                loss.setdefault(m, {})[s] = x
                if rec.get("initial_ppl") is not None:
                    ppl.setdefault(m, {})[s] = rec["initial_ppl"]
    return loss, ppl


def spread(v: dict[int, float]) -> float:
    return max(v.values()) - min(v.values()) if len(v) > 1 else math.inf  # one seed: no spread known


def verdict(loss: dict[str, dict[int, float]]) -> dict:
    """Best vs runner-up by median final loss: 'winner' or 'tie', with the paired margins."""
    ranked = sorted(loss, key=lambda m: st.median(loss[m].values()))
    if len(ranked) < 2:
        return {"verdict": "n/a", "reason": "fewer than two methods"}
    a, b = ranked[0], ranked[1]
    common = sorted(set(loss[a]) & set(loss[b]))
    diffs = [loss[b][s] - loss[a][s] for s in common]
    sp = max(spread(loss[a]), spread(loss[b]))
    out = {"best": a, "runner_up": b, "seeds": common, "margins": diffs, "seed_spread": sp}
    if len(common) < MIN_SEEDS:
        return {**out, "verdict": "tie", "reason": f"only {len(common)} common seeds (a winner needs ≥ {MIN_SEEDS})"}
    if min(diffs) > sp:
        return {**out, "verdict": "winner", "reason": f"ahead by more than the seed spread ({sp:.4f}) in all {len(common)} seeds"}
    return {**out, "verdict": "tie", "reason": f"smallest per-seed margin {min(diffs):+.4f} does not exceed the seed spread {sp:.4f}"}


def _mr(xs, fmt="{:.4f}") -> str:
    xs = list(xs)
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt.format(xs[0]) + " (1 seed)"
    return f"{fmt.format(st.median(xs))} [{fmt.format(min(xs))}, {fmt.format(max(xs))}]"


def _ppl(x: float) -> str:
    return f"{x:.3e}" if x >= 1e5 else f"{x:.2f}"


def header(runs: dict[int, dict]) -> list[str]:
    r = runs[min(runs)]
    s, m = r["settings"], r.get("machine", {})
    tokens = s["steps"] * s["tokens_per_step"]
    return [f"Model {Path(r['model']).name}, {r['source_layers']} -> {r['target_layers']} layers. "
            f"CPT {s['steps']} steps x {s['batch']} x {s['seq_len']} = {tokens:,} tokens per run "
            f"({s.get('dtype', 'f32')}, `--freeze {s['freeze']}`, lr {s['lr']:g}); held-out: {s['eval_tokens']:,} tokens in "
            f"windows of {s['seq_len']}; initial ppl on {s['eval_max_tokens']:,} tokens; seeds {', '.join(map(str, sorted(runs)))}; "
            f"machine {m.get('cpu_model')}, nproc {m.get('nproc')}.", ""]


def table(d: Path) -> tuple[str, dict]:
    runs = load(d)
    loss, ppl = per_method(runs)
    v = verdict(loss)
    best = v.get("best")
    orig = runs[min(runs)].get("original", {})
    ranked = sorted(loss, key=lambda m: st.median(loss[m].values()))
    lines = header(runs) + [
        f"Original model: held-out loss {orig.get('heldout_loss', float('nan')):.4f}, initial ppl "
        f"{orig.get('initial_ppl', float('nan')):.2f}. Final held-out loss in nats/token, lower is better; "
        "median [min, max] over seeds.", "",
        "| method | seeds | final held-out loss | initial ppl | margin to best (paired) |",
        "|---|---:|---:|---:|---:|"]
    for m in ranked:
        common = sorted(set(loss[m]) & set(loss[best])) if best else []
        margin = "—" if m == best else _mr([loss[m][s] - loss[best][s] for s in common], "{:+.4f}")
        p = ppl.get(m, {})
        lines.append(f"| {m} | {len(loss[m])} | {_mr(loss[m].values())} | "
                     f"{_mr(p.values(), '{:.4g}') if p else 'n/a'} | {margin} |")
    lines += ["", f"Verdict: **{v['verdict']}**" + (f" — {v.get('best')} over {v.get('runner_up')}: {v['reason']}."
                                                   if "best" in v else f": {v['reason']}.")]
    return "\n".join(lines) + "\n", {"verdict": v, "final_loss": loss, "initial_ppl": ppl}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--json", action="store_true", help="print the numbers and the verdict as JSON instead")
    a = p.parse_args()
    text, data = table(a.dir)
    if a.out:
        a.out.write_text(text)
    print(json.dumps(data, indent=2) if a.json else text, end="" if not a.json else "\n")


if __name__ == "__main__":
    main()
