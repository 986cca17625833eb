"""The study harness (bench/study.sh, bench/study_gpu.sh, bench/seeds_table.py): the protocol
its plans carry, the winner/tie rule, and a smoke run of the whole pipeline on a tiny model."""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from _cli import ROOT

spec = importlib.util.spec_from_file_location("seeds_table", ROOT / "bench" / "seeds_table.py")
seeds_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seeds_table)


def plan(script: str, model: str) -> list[dict]:
    p = subprocess.run(["bash", str(ROOT / "bench" / script), model, "plan"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PY": sys.executable}, check=True)
    out = []
    for line in p.stdout.splitlines():
        argv = shlex.split(line)
        opts = {argv[i][2:]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--") and not argv[i + 1].startswith("--")}
        out.append(opts)
    return out


@pytest.mark.parametrize("script,tokens,held,window", [("study.sh", 50_000, 8192, 512), ("study_gpu.sh", 5_000_000, 8192, 512)])
@pytest.mark.parametrize("model", ["smollm2", "gemma"])
def test_plans_carry_the_protocol(script, tokens, held, window, model):
    runs = plan(script, model)
    seeds = Counter()
    for r in runs:
        assert int(r["steps"]) * int(r["batch"]) * int(r["seq-len"]) >= tokens
        assert int(r["eval-tokens"]) >= held and int(r["eval-max-tokens"]) >= held and int(r["seq-len"]) >= window
        for m in r["methods"].split(","):
            seeds[m] += 1
    assert len({r["seed"] for r in runs}) == len(runs), "one report per seed"
    for m, n in seeds.items():
        assert n >= (5 if m.startswith("lesa") else 3), f"{m}: {n} seeds"
    must = {"llama-pro", "solar", "ot-fuse", "llama-pro@bottom", "random", "rand-svd"}
    assert must <= set(seeds)
    assert any(m.startswith("lesa+epochs=10") for m in seeds) and any("predictor-steps" in m for m in seeds)
    assert any("zero-out" in m for m in seeds) and any("+align" in m for m in seeds)
    if script == "study_gpu.sh":
        assert all(r["device"] == "cuda" and r["dtype"] == "bf16" for r in runs)


def fake(tmp: Path, losses: dict[str, list[float]]) -> Path:
    for s in range(max(len(v) for v in losses.values())):
        d = tmp if s == 0 else tmp / f"seed-{s}"
        d.mkdir(parents=True, exist_ok=True)
        runs = {m: {"status": "ok", "final_eval_loss": v[s], "initial_ppl": 10.0} for m, v in losses.items() if s < len(v)}
        (d / "results.json").write_text(json.dumps({
            "model": "m", "source_layers": 2, "target_layers": 3, "original": {"heldout_loss": 3.0, "initial_ppl": 20.0},
            "settings": {"seed": s, "steps": 1, "tokens_per_step": 1, "batch": 1, "seq_len": 1, "freeze": "original",
                         "lr": 1e-4, "eval_tokens": 1, "eval_max_tokens": 1}, "runs": runs}))
    return tmp


def test_winner_only_beyond_the_seed_spread(tmp_path):
    clear = seeds_table.table(fake(tmp_path / "a", {"x": [2.00, 2.01, 2.02], "y": [2.10, 2.12, 2.11]}))[1]["verdict"]
    assert clear["verdict"] == "winner" and clear["best"] == "x"
    # x is ahead in every seed, but by less than its own spread (0.05) in one: a tie
    close = seeds_table.table(fake(tmp_path / "b", {"x": [2.00, 2.05, 2.02], "y": [2.06, 2.09, 2.10]}))[1]["verdict"]
    assert close["verdict"] == "tie" and close["best"] == "x"
    few = seeds_table.table(fake(tmp_path / "c", {"x": [1.0, 1.0], "y": [2.0, 2.0]}))[1]["verdict"]
    assert few["verdict"] == "tie" and "common seeds" in few["reason"]


def test_smoke_run_writes_reports_table_and_plots(fx, tmp_path):
    # A fixtures folder of its own: the tiny model, and the study's two texts cut short
    # (tokenising all 10 MB of SOTU would dominate the run), with a token cache of its own.
    fixtures = tmp_path / "fixtures"
    (fixtures / "text").mkdir(parents=True)
    (fixtures / "tiny-llama-f32").symlink_to(fx("tiny-llama-f32"))
    for name, chars in (("sotu.txt", 40_000), ("moby-dick.txt", 20_000)):
        text = (fx("text") / name).read_text(encoding="utf-8")[:chars]
        (fixtures / "text" / name).write_text(text, encoding="utf-8")
    out = tmp_path / "study"
    env = {**os.environ, "PY": sys.executable, "PROFILE": "smoke", "OUT": str(out),
           "LESA_FIXTURES": str(fixtures), "LESA_CACHE_DIR": str(tmp_path / "tokens"), "OPENBLAS_NUM_THREADS": "1"}
    p = subprocess.run(["bash", str(ROOT / "bench" / "study.sh"), "tiny", "run"], capture_output=True, text=True,
                       timeout=900, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    for d in (out, out / "seed-1"):
        r = json.loads((d / "results.json").read_text())
        assert all(x["status"] == "ok" for x in r["runs"].values()), r["runs"]
    assert json.loads((out / "results.json").read_text())["settings"]["seq_len"] == 32
    summary = (out / "summary.md").read_text()
    # smoke: every method on seed 0, the LESA-only list (llama-pro here) on seed 1 too
    assert "Verdict: **tie**" in summary and "| llama-pro | 2 |" in summary and "| random | 1 |" in summary
    assert (out / "heldout_loss.png").stat().st_size > 10_000
