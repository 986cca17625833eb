"""Why LESA's new layers hurt on SmolLM2: initial perplexity over seeds, and the shape of the
predicted weights (spectral norm vs Frobenius norm, next to the real neighbours'), for lesa and
the PyTorch oracle.

    python bench/lesa_collapse.py CKPT TEXT OUT.md [--seeds 0 1 2] [--epochs 3] [--oracle-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
from lesa_py.eval import main as _unused  # noqa: F401,E402  (import check: the venv has lesa_py)


def tensors(d: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        with safe_open(f, "pt") as sf:
            out.update({k: sf.get_tensor(k) for k in sf.keys()})
    return out


def ppl(d: Path, text: str) -> float:
    p = subprocess.run([sys.executable, "-m", "lesa_py.eval", str(d), "--text", text, "--max-tokens", "1024", "--json", "--quiet"],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)["ppl"]


def shape_stats(src: dict, out: dict, new_layer: int, j: int) -> list[str]:
    rows = []
    for mod, t in (("self_attn", "q_proj"), ("self_attn", "o_proj"), ("mlp", "gate_proj"), ("mlp", "down_proj")):
        w = out[f"model.layers.{new_layer}.{mod}.{t}.weight"]
        n = src[f"model.layers.{j}.{mod}.{t}.weight"]
        rows.append(f"{t}: spectral/Frobenius {torch.linalg.matrix_norm(w, 2) / w.norm():.2f} (neighbour {torch.linalg.matrix_norm(n, 2) / n.norm():.2f})")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt", type=Path)
    ap.add_argument("text")
    ap.add_argument("out")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--oracle-dir", type=Path, help="an oracle expansion (bench/oracle_pipeline.py ... OUT) to measure alike")
    a = ap.parse_args()
    src = tensors(a.ckpt)
    lines = ["# LESA's predicted layers on SmolLM2-135M: initial perplexity and shape", "",
             f"Command: `python bench/lesa_collapse.py {a.ckpt} {a.text} OUT --seeds {' '.join(map(str, a.seeds))} --epochs {a.epochs}`"
             + (f" `--oracle-dir {a.oracle_dir}`" if a.oracle_dir else ""), "",
             f"Original model: ppl {ppl(a.ckpt, a.text):.2f} (first 1024 held-out tokens of Moby-Dick). 30 → 45 layers, "
             f"`--fill layer0` (as the notebooks and the oracle), {a.epochs} epochs.", "",
             "| model | initial ppl | new layer 15 (between 14 and 15): spectral norm / Frobenius norm |", "|---|---|---|"]
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            subprocess.run(["node", str(ROOT / "dist/src/cli/bin.js"), "expand", str(a.ckpt), "-o", str(out), "--method", "lesa",
                            "--target-layers", "45", "--epochs", str(a.epochs), "--fill", "layer0", "--seed", str(seed), "--quiet"], check=True)
            lines.append(f"| lesa seed {seed} | {ppl(out, a.text):.4g} | {'; '.join(shape_stats(src, tensors(out), 15, 14))} |")
            print(lines[-1], file=sys.stderr)
    if a.oracle_dir:
        lines.append(f"| PyTorch oracle (seed 0) | {ppl(a.oracle_dir, a.text):.4g} | {'; '.join(shape_stats(src, tensors(a.oracle_dir), 15, 14))} |")
    Path(a.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
