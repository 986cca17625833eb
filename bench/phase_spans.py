"""Per weight type phase durations of one `lesa expand --method lesa --json` run, from its
stderr events (each carries `t`, seconds since the start):

    python bench/phase_spans.py EVENTS.jsonl

A phase ends at its last event (progress events always include the final done == total);
it starts where the type's previous phase ended (gram: at the type's `decompose` event, or
`gram` on --device cuda|cpu-torch).
Two types may overlap in time; the `start` column shows when each began.
"""
from __future__ import annotations

import json
import sys

PHASES = ["gram", "eig", "coefficients", "train", "predict"]


def spans(lines: list[str]) -> dict[str, dict[str, float]]:
    start: dict[str, float] = {}
    last: dict[str, dict[str, float]] = {}
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        ty = e.get("type")
        if ty is None or "t" not in e:
            continue
        if e.get("event") == "phase" and e.get("name") in ("decompose", "gram") and ty not in start:
            start[ty] = e["t"]
        elif e.get("event") == "progress" and e.get("phase") in PHASES:
            last.setdefault(ty, {})[e["phase"]] = e["t"]
    out = {}
    for ty, ends in last.items():
        prev, row = start.get(ty, 0.0), {"start": start.get(ty, 0.0)}
        for p in PHASES:
            if p in ends:
                row[p] = ends[p] - prev
                prev = ends[p]
        row["total"] = prev - row["start"]
        out[ty] = row
    return out


def main(path: str) -> None:
    rows = spans(open(path, encoding="utf-8").read().splitlines())
    cols = ["start", *PHASES, "total"]
    print("| type | " + " | ".join(f"{c} s" for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for ty, r in sorted(rows.items(), key=lambda kv: kv[1]["start"]):
        print(f"| {ty} | " + " | ".join(f"{r[c]:.1f}" if c in r else "-" for c in cols) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
