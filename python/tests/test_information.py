"""`lesa analyze --information`: the metrics against numpy on the same tensors, and the budgets it trained."""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from _cli import ROOT, lesa, layers_of

NODE = textwrap.dedent("""
    import { readFileSync } from 'node:fs';
    import { shapeOf } from %s;
    import { closeness } from %s;
    const a = JSON.parse(readFileSync(process.argv[2], 'utf8'));
    const f32 = (p) => { const b = readFileSync(p); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
    const out = [];
    for (const c of a.cases) {
      const g = f32(c.guess), t = f32(c.truth);
      out.push({ ...await shapeOf(g, c.rows, c.cols), ...closeness(g, t) });
    }
    console.log(JSON.stringify(out));
""")


def numpy_metrics(g: np.ndarray, t: np.ndarray) -> dict[str, float]:
    g64, t64 = g.astype(np.float64), t.astype(np.float64)
    fro = np.linalg.norm(g64)
    return {
        "meanRowShare": float(np.sum(g64.mean(axis=0) ** 2) * g.shape[0] / fro**2),
        "sigma1Share": float(np.linalg.svd(g64, compute_uv=False)[0] / fro),
        "cosine": float(np.sum(g64 * t64) / (fro * np.linalg.norm(t64))),
        "normRatio": float(fro / np.linalg.norm(t64)),
    }


def test_metrics_match_numpy(tmp_path: Path):
    rng = np.random.default_rng(3)
    cases, expected = [], []
    shapes = [(40, 17), (17, 40), (33, 33)]
    for k, (rows, cols) in enumerate(shapes):
        t = rng.standard_normal((rows, cols)).astype(np.float32)
        for kind in ("noise", "collapsed", "related"):
            if kind == "noise":
                g = rng.standard_normal((rows, cols))
            elif kind == "collapsed":  # one row repeated plus a little noise: meanrow and σ1/F near 1
                g = np.tile(rng.standard_normal(cols), (rows, 1)) + 0.05 * rng.standard_normal((rows, cols))
            else:
                g = 0.7 * t + 0.3 * rng.standard_normal((rows, cols))
            g = g.astype(np.float32)
            paths = {n: tmp_path / f"{k}-{kind}-{n}.f32" for n in ("guess", "truth")}
            g.tofile(paths["guess"])
            t.tofile(paths["truth"])
            cases.append({"guess": str(paths["guess"]), "truth": str(paths["truth"]), "rows": rows, "cols": cols})
            expected.append(numpy_metrics(g, t))
    (tmp_path / "args.json").write_text(json.dumps({"cases": cases}))
    script = tmp_path / "m.mjs"
    dist = ROOT / "dist" / "src" / "analyze"
    script.write_text(NODE % (json.dumps((dist / "information.js").as_uri()), json.dumps((dist / "loo.js").as_uri())))
    p = subprocess.run(["node", str(script), str(tmp_path / "args.json")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout)
    for g, e in zip(got, expected):
        for key, want in e.items():
            assert abs(g[key] - want) < 1e-5, (key, g[key], want)
    collapsed = expected[1]
    assert collapsed["meanRowShare"] > 0.9 and collapsed["sigma1Share"] > 0.9  # the cases do differ


def test_information_cli_reports_truth_controls_and_budgets(fx):
    src = fx("tiny-llama-f32")
    L, held = layers_of(src), 3
    p = lesa("analyze", src, "--information", "--types", "k_proj", "--layers", held, "--epochs", "1", "--json")
    out = json.loads(p.stdout)
    w = {k: v for f in sorted(src.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    k = [w[f"model.layers.{i}.self_attn.k_proj.weight"] for i in (held - 1, held, held + 1)]
    row = out["rows"][0]
    assert (row["type"], row["layer"]) == ("k_proj", held)
    truth = numpy_metrics(k[1], k[1])
    assert abs(row["truth"]["meanRowShare"] - truth["meanRowShare"]) < 1e-5
    assert abs(row["truth"]["sigma1Share"] - truth["sigma1Share"]) < 1e-5
    # Both controls sit at the neighbours' mean norm, computed here.
    ratio = (np.linalg.norm(k[0].astype(np.float64)) + np.linalg.norm(k[2].astype(np.float64))) / 2 / np.linalg.norm(k[1].astype(np.float64))
    for control in ("rand-svd", "random"):
        assert abs(row["guesses"][control]["normRatio"] - ratio) < 1e-5, control
    # Budgets: 1 epoch over the other L-3 interior layers; Llama-3-8B's k_proj (1024 rows) at 1 epoch.
    rows, cols = k[1].shape
    assert out["steps"]["k_proj"] == {"lesa": -(-(L - 3) * min(rows, L * cols) // 64), "lesa-step-matched": 1024 * 30 // 64}
    assert out["summary"]["k_proj"]["guesses"]["lesa"]["cosine"] == row["guesses"]["lesa"]["cosine"]


def test_information_seed_changes_every_guess_and_reproduces(fx):
    """--seed reaches LESA's init and sample order and both controls' draws; the same seed gives the same numbers."""
    src = fx("tiny-llama-f32")
    run = lambda seed: json.loads(lesa("analyze", src, "--information", "--types", "k_proj", "--layers", 3, "--epochs", "1", "--seed", seed,  # noqa: E731
                                       "--json", "--quiet").stdout)["rows"][0]["guesses"]
    a, b = run(0), run(1)
    assert run(0) == a
    for guess in ("lesa", "lesa-step-matched", "rand-svd", "random"):
        assert a[guess]["cosine"] != b[guess]["cosine"], guess
        assert a[guess]["sigma1Share"] != b[guess]["sigma1Share"], guess


def _table_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("lesa_information_table", ROOT / "bench" / "lesa_information_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_information_table_over_seeds(tmp_path: Path, capsys):
    """bench/lesa_information_table.py: median [min, max] over seeds, and the overlap verdict, on hand-made outputs."""
    cos = {"lesa": [0.30, 0.10, 0.20], "lesa-step-matched": [0.01, -0.02, 0.00], "rand-svd": [0.02, -0.01, 0.00], "random": [0.03, 0.01, -0.03]}
    paths = []
    for s in range(3):
        guesses = {g: {"cosine": c[s], "normRatio": 1 + s / 10, "meanRowShare": 0.1, "sigma1Share": 0.5 - s / 10, "relError": 1} for g, c in cos.items()}
        row = {"type": "k_proj", "layer": 15, "truth": {"meanRowShare": 0.005, "sigma1Share": 0.2}, "guesses": guesses}
        p = tmp_path / f"k-{s}.json"
        p.write_text(json.dumps({"options": {"seed": s}, "steps": {"k_proj": {"lesa": 810, "lesa-step-matched": 4800}}, "rows": [row]}))
        paths.append(str(p))
    _table_module().main(paths)
    out = capsys.readouterr().out
    assert "| | | LESA, notebook budget | 810 | 0,1,2 | +0.200 [+0.100, +0.300] | 1.100 [1.000, 1.200] | 0.400 [0.300, 0.500] |" in out
    # Controls' cosines span [-0.03, +0.03]: LESA's notebook range starts 0.07 above it (spread 0.06).
    assert "LESA, notebook budget: above the controls by 0.0700 (controls' spread 0.0600, 1.17× it)" in out
    assert "LESA, Llama-3-8B steps: indistinguishable" in out
