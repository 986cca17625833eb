"""Model directories: the one check that a directory is a safetensors checkpoint, and the one
reader of its lesa.json manifest (the format is docs/manifest.md; TypeScript's side is
src/checkpoint/checkpoint.ts and src/checkpoint/manifest.ts)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .errors import CheckpointError

MANIFEST_FORMAT = "lesa-manifest/1"
# Weight files that unpickle when loaded (src/checkpoint/checkpoint.ts PICKLE): refused, never read.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def weight_files(d: Path, label: str = "") -> list[Path]:
    """The safetensors weight files of checkpoint directory `d`; `label` (e.g. "--model")
    prefixes the message when the directory is refused."""
    d = Path(d)
    name = f"{label} {d}" if label else str(d)
    if not d.is_dir():
        raise CheckpointError(f"{name}: not a directory")
    if not (d / "config.json").is_file():
        raise CheckpointError(f"{name}: not a checkpoint directory (no config.json)")
    st = sorted(d.glob("*.safetensors"))
    if not st:
        pickles = sorted(p.name for p in d.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(f"{name}: only pickle weights ({', '.join(pickles)}): pickle checkpoints can run "
                                  "code when loaded and are refused; convert them to safetensors first")
        raise CheckpointError(f"{name}: no .safetensors weights")
    return st


def read_manifest(d: Path) -> Optional[dict]:
    """`d`/lesa.json checked against docs/manifest.md, or None when the directory has none."""
    path = Path(d) / "lesa.json"
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise CheckpointError(f"{path}: format is {got!r}, expected {MANIFEST_FORMAT!r}")
    nl = m.get("new_layers")
    if not isinstance(nl, list) or not all(isinstance(i, int) and i >= 0 for i in nl):
        raise CheckpointError(f"{path}: new_layers must be a list of layer indices, got {nl!r}")
    if not isinstance(m.get("layer_prefix"), str):
        raise CheckpointError(f"{path}: layer_prefix missing")
    for key in ("source_layers", "target_layers"):
        if key in m and not (isinstance(m[key], int) and m[key] > 0):
            raise CheckpointError(f"{path}: {key} must be a positive integer, got {m[key]!r}")
    return m
