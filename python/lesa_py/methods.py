"""The expansion methods as the TypeScript CLI declares them (``lesa methods --json``).

One owner: each method's file under src/methods/ declares its options (defaults, bounds) and
target rule; this module only reads that catalogue, so Python never keeps its own copy.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

from .errors import UserError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = ROOT / "dist" / "src" / "cli" / "bin.js"
_BIN = [os.environ.get("LESA_BIN", str(DEFAULT_BIN))]


def use_bin(lesa_bin: str) -> None:
    """Read the catalogue from this built CLI (``--lesa-bin``) from now on."""
    _BIN[0] = str(lesa_bin)


@functools.lru_cache(maxsize=None)
def _load(lesa_bin: str) -> dict:
    try:
        p = subprocess.run(["node", lesa_bin, "methods", "--json"], capture_output=True, text=True, timeout=120)
    except OSError as e:
        raise UserError(f"cannot run node for the method catalogue: {e}") from e
    if p.returncode != 0:
        raise UserError(f"{lesa_bin} methods --json failed ({p.stderr.strip()[:200]}); "
                        "build the CLI first (npx tsc -p tsconfig.json)")
    return {m["name"]: m for m in json.loads(p.stdout)["methods"]}


def catalogue() -> dict:
    """Method name -> its entry: summary, reference, options (key, flag, type, default, bounds,
    help), targets ({min, max} as [a, b] meaning a*L + b, even, multipleOfSource, why), placement."""
    return _load(_BIN[0])


def defaults(method: str) -> dict:
    """A method's option defaults by key (e.g. lesa's epochs, lambda, hidden, lr, batch, weightDecay)."""
    return {o["key"]: o["default"] for o in catalogue()[method]["options"]}


def target_problem(method: str, L: int, t: int):
    """None when `method` can grow an L-layer model to t layers, else why not (one line)."""
    rule = catalogue()[method]["targets"]
    lo, hi = (a * L + b for a, b in (rule["min"], rule["max"]))
    if lo <= t <= hi and not (rule.get("even") and t % 2) and not (rule.get("multipleOfSource") and t % L):
        return None
    if rule.get("multipleOfSource"):
        return f"{method} {rule['why']}: the target must be a multiple of {L}, {t} is not"
    return f"{method} needs {'an even' if rule.get('even') else 'a'} target in {lo}..{hi} ({rule['why']}); {t} is not"
