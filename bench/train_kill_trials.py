"""SIGKILL trials for continued pre-training: kill, resume with the same command, compare.

    PYTHONPATH=python python bench/train_kill_trials.py [--random 10] [--out bench/results/train-faults.md]

On the tiny 4-layer Llama of the tests (8 steps, checkpoint every 2, keep 2, held-out
evaluation every 3 steps), each trial runs `lesa_py.cpt` in a subprocess that is
SIGKILLed either at a fault point (LESA_CPT_KILL_AT: after an optimizer step, inside an
evaluation batch, at each stage of a checkpoint save) or at a random moment by this
script. Some trials then flip one byte of the newest checkpoint, as bit rot would. Then
the same command (`--resume auto`) runs again, and the trial checks:

* every checkpoint under a real name is complete and byte-equal to the uninterrupted
  reference run's checkpoint of that step (nothing partial is ever visible);
* the resumed run starts at the newest intact checkpoint (step 0 if none), refusing a
  corrupted one with its line;
* its loss and eval rows equal the reference's (|diff| < 1e-5) and its final weights
  too (|diff| < 1e-6), as in test_cpt's resume test.

Outcomes: resumed exactly / refused cleanly (a corrupt checkpoint refused, the previous one
used, then exact) / lost (anything else). Writes a markdown report.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "python" / "tests"))

import torch  # noqa: E402

import _tiny  # noqa: E402
from lesa_py import checkpoints, cpt  # noqa: E402
from lesa_py.data import sha256_file  # noqa: E402

torch.set_num_threads(1)
ARGS = dict(steps=8, seq_len=16, batch=4, lr=1e-2, min_lr=1e-3, warmup=1, eval_every=3, eval_tokens=400,
            save_every=2, keep=2, quiet=True, device="cpu", dtype="f32", resume="auto")
# 6 eval batches per evaluation (24 windows of 17 tokens, batch 4), evaluations at steps 0, 3, 6, 8;
# saves at steps 2, 4, 6, 8; pruning (keep 2) at the saves of steps 6 and 8.
POINTS = ([f"step:{k}" for k in range(1, 9)] + [f"eval:{k}" for k in (2, 5, 8, 11, 15, 20)] +
          [f"{p}:{k}" for p in ("save.begin", "save.model", "save.synced", "save.renamed") for k in (1, 3)] +
          ["save.prune:1", "save.prune:2"])
CORRUPT = ["step:6", "save.model:4", "eval:20", "step:8"]  # then flip a byte of the newest checkpoint


def sha(p: Path) -> str:
    return sha256_file(p)


def child(args: dict, point: str | None, kill_after: float | None, af: Path) -> tuple[int, float]:
    """(exit status, seconds from the log's creation to the last checkpoint's) of one training child."""
    af.write_text(json.dumps(args))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "python"))
    if point:
        env["LESA_CPT_KILL_AT"] = point
    code = "import json,sys,torch; torch.set_num_threads(1); from lesa_py import cpt; cpt.train(json.load(open(sys.argv[1])))"
    p = subprocess.Popen([sys.executable, "-c", code, str(af)], env=env, stderr=subprocess.DEVNULL)
    log = Path(args["out"]) / "log.jsonl"
    last = Path(args["out"]) / "ckpt" / f"step-{args['steps']:08d}"
    t_log, t_last = None, None
    while p.poll() is None:
        if t_last is None and last.exists():
            t_last = time.time()
        if t_log is None and log.exists():
            t_log = time.time()  # set-up done: training has begun
        if kill_after is not None and t_log is not None and time.time() - t_log >= kill_after:
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    rc = p.wait()
    return rc, (t_last or time.time()) - t_log if t_log else 0.0


def log_rows(out: Path):
    return [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines() if l.strip()]


def compare(ref: Path, out: Path) -> str | None:
    from safetensors.torch import load_file

    a, b = log_rows(ref), log_rows(out)
    if [(r["step"], "loss" in r) for r in a] != [(r["step"], "loss" in r) for r in b]:
        return "log rows differ"
    for x, y in zip(a, b):
        for k in ("loss", "eval_loss"):
            if k in x and abs(x[k] - y[k]) >= 1e-5:
                return f"{k} at step {x['step']}: {x[k]} vs {y[k]}"
    name = f"step-{ARGS['steps']:08d}/model.safetensors"
    wa, wb = load_file(str(ref / "ckpt" / name)), load_file(str(out / "ckpt" / name))
    if wa.keys() != wb.keys() or any(not torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa):
        return "final weights differ"
    return None


def where_killed(out: Path) -> str:
    """What the disk says about the moment of the kill."""
    rows = log_rows(out) if (out / "log.jsonl").exists() else []
    last = max((r["step"] for r in rows if "loss" in r), default=0)
    tmp = sorted(p.name for p in (out / "ckpt").glob(".tmp-step-*")) if (out / "ckpt").exists() else []
    if tmp:
        return f"saving {tmp[0].split('-')[2]}"
    return f"after step {last}"


def trial(ref: Path, base: dict, root: Path, i: int, point: str | None, kill_after: float | None,
          corrupt: bool) -> dict:
    out = root / f"t{i:02d}"
    args = dict(base, out=str(out))
    rc, ran = child(args, point, kill_after, root / f"t{i:02d}.json")
    rec = {"trial": i, "point": point or f"random {kill_after:.2f} s", "rc": rc, "observed": where_killed(out)}
    names = sorted(d.name for d in (out / "ckpt").glob("step-*")) if (out / "ckpt").exists() else []
    rec["on_disk"] = ", ".join(n[5:].lstrip("0") or "0" for n in names) or "-"
    partial = [n for n in names if checkpoints.check_complete(out / "ckpt" / n) is not None or any(
        sha(out / "ckpt" / n / f) != sha(ref / "ckpt" / n / f) for f in ("model.safetensors", "optimizer.safetensors"))]
    want = int(names[-1][5:]) if names else 0
    refused_expected = None
    if corrupt and names:
        f = out / "ckpt" / names[-1] / "model.safetensors"
        b = bytearray(f.read_bytes())
        b[-5] ^= 0x01
        f.write_bytes(bytes(b))
        refused_expected = names[-1]
        want = int(names[-2][5:]) if len(names) > 1 else 0
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            s = cpt.train(args)
        start = s["start_step"]
        why = compare(ref, out)
    except Exception as e:  # noqa: BLE001 - every failure is an outcome to count
        start, why = None, f"{type(e).__name__}: {e}"
    if refused_expected and start is None and len(names) == 1 and "no complete checkpoint" in why:
        why = None  # the only checkpoint is corrupt: refusing to run is the clean outcome
        start = "refused"
        want = "refused"
    refused_ok = refused_expected is None or f"{refused_expected} refused: model.safetensors does not match" in err.getvalue()
    rec["resumed_from"] = start
    if partial:
        why = f"partial checkpoint visible: {partial}"
    elif start != want:
        why = why or f"resumed from {start}, expected {want}"
    elif not refused_ok:
        why = why or "corrupt checkpoint not refused"
    rec["outcome"] = "lost: " + why if why else ("refused cleanly" if refused_expected else "resumed exactly")
    shutil.rmtree(out, ignore_errors=True)
    return rec


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--random", type=int, default=10, help="trials killed at a random moment")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-points", action="store_true", help="only the random-moment trials")
    ap.add_argument("--out", default=str(ROOT / "bench/results/train-faults.md"))
    a = ap.parse_args()
    t_begin, load_before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="lesa-kill-"))
    text = _tiny.make_text(root / "train.txt")
    held = _tiny.make_text(root / "eval.txt", n_sentences=200, seed=1)
    model = _tiny.make_model_dir(root / "model", text)
    base = dict(ARGS, model=str(model), train=str(text), eval=str(held), cache_dir=str(root / "cache"))
    ref = root / "ref"
    with contextlib.redirect_stderr(io.StringIO()):
        cpt.train(dict(base, out=str(ref), keep=100))
    # How long the training phase of an uninterrupted child lasts: the window for random kills.
    rc, span = child(dict(base, out=str(root / "calib")), None, None, root / "calib.json")
    assert rc == 0, rc
    rng = random.Random(a.seed)
    plan = [] if a.no_points else [(p, None, False) for p in POINTS] + [(p, None, True) for p in CORRUPT]
    plan += [(None, rng.uniform(0, span), False) for _ in range(a.random)]
    recs = []
    for i, (point, after, corrupt) in enumerate(plan):
        r = trial(ref, base, root, i, point, after, corrupt)
        recs.append(r)
        print(json.dumps(r), flush=True)
    shutil.rmtree(root, ignore_errors=True)

    count = {k: sum(r["outcome"].startswith(k) for r in recs) for k in ("resumed exactly", "refused cleanly", "lost")}
    lines = [
        "# Continued pre-training under SIGKILL: kill trials",
        "",
        f"Command: `PYTHONPATH=python python bench/train_kill_trials.py --random {a.random} --seed {a.seed}"
        f"{' --no-points' if a.no_points else ''}`  ",
        f"Date: {t_begin}. Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}; load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} "
        "(shared machine; timings here are not figures).",
        "",
        f"Run: tiny 4-layer Llama (2 new layers trained), {ARGS['steps']} steps, checkpoint every "
        f"{ARGS['save_every']} (keep {ARGS['keep']}), eval every {ARGS['eval_every']}, `--resume auto`. "
        f"Random kills fall uniformly in the {span:.1f} s an uninterrupted child took from the start of its log "
        "to its last checkpoint.",
        "",
        f"**{len(recs)} trials: {count['resumed exactly']} resumed exactly, {count['refused cleanly']} refused "
        f"cleanly (corrupt newest checkpoint refused, previous used, then exact), {count['lost']} lost anything.**",
        "",
        "| # | kill point | what the disk shows | exit | checkpoints left (steps) | resumed from step | outcome |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        corrupt = not a.no_points and r["point"] in CORRUPT and r["trial"] >= len(POINTS)
        point = r["point"] + (" + corrupt newest" if corrupt else "")
        lines.append(f"| {r['trial']} | {point} | {r['observed']} | {r['rc']} | {r['on_disk']} | "
                     f"{r['resumed_from']} | {r['outcome']} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"kill trials: {len(recs)}, {count}", flush=True)
    return 0 if count["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
