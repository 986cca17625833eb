"""Run the lesa CLI (the built TypeScript) from Python tests."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "dist" / "src" / "cli" / "bin.js"


def lesa(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    p = subprocess.run(["node", str(BIN), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "2")})
    if check and p.returncode != 0:
        raise AssertionError(f"lesa {' '.join(map(str, args))} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


def tree_hash(d: Path) -> dict[str, str]:
    """sha256 of every file under d (relative name -> hex)."""
    out = {}
    for p in sorted(d.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(d))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def manifest(d: Path) -> dict:
    return json.loads((d / "lesa.json").read_text())


def layers_of(d: Path) -> int:
    return json.loads((d / "config.json").read_text())["num_hidden_layers"]
