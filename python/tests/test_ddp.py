"""CPT under DDP: torchrun, 2 CPU processes, gloo.

Each rank draws different windows, so if gradients were not all-reduced the two
replicas would drift apart after one step. The worker writes every rank's
trainable parameters; they must be bit-identical. A second pair of runs checks
that a DDP resume (per-rank sampler and RNG states) continues exactly.
OMP_NUM_THREADS=1: two processes on two cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _tiny  # noqa: E402

PY_DIR = Path(__file__).resolve().parents[1]

WORKER = r'''
import json, sys, os
import torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from lesa_py import cpt

args = json.loads(open(sys.argv[1]).read())
summary, model = cpt._train(cpt._config(args))
rank = int(os.environ["RANK"])
sd = {n: p.detach().clone().contiguous() for n, p in model.named_parameters()}
save_file(sd, os.path.join(args["out"], f"params-rank{rank}-step{summary['steps']}.safetensors"))
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    text = _tiny.make_text(root / "train.txt")
    held = _tiny.make_text(root / "eval.txt", n_sentences=100, seed=1)
    model = _tiny.make_model_dir(root / "model", text)
    (root / "worker.py").write_text(WORKER)
    return dict(root=root, text=text, eval=held, model=model)


def torchrun(tiny, out: str, **kw):
    args = dict(model=str(tiny["model"]), train=str(tiny["text"]), eval=str(tiny["eval"]),
                out=str(tiny["root"] / out), cache_dir=str(tiny["root"] / "cache"), device="cpu", dtype="f32",
                steps=4, seq_len=16, batch=2, grad_accum=2, lr=1e-2, min_lr=1e-3, warmup=1,
                eval_every=2, eval_tokens=200, save_every=2, keep=2, quiet=True)
    args.update(kw)
    af = tiny["root"] / f"{out}-{args['steps']}-{int(bool(args.get('resume')))}.json"
    af.write_text(json.dumps(args))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(PY_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tiny["root"] / "worker.py"), str(af)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return Path(args["out"])


def load(p):
    from safetensors.torch import load_file

    return load_file(str(p))


def log_rows(out):
    return [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]


def test_ddp_replicas_stay_identical_and_resume(tiny):
    full = torchrun(tiny, "full")
    r0, r1 = load(full / "params-rank0-step4.safetensors"), load(full / "params-rank1-step4.safetensors")
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
    # ...and training did something: the new layers moved, the frozen ones did not.
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny["model"]), dtype=torch.float32)
    base = {n: p.detach() for n, p in base.named_parameters()}
    new = tuple(f"model.layers.{i}." for i in _tiny.NEW_LAYERS)
    for k in r0:
        assert torch.equal(r0[k], base[k]) != k.startswith(new), k

    rows = log_rows(full)
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "eval_loss" in r] == [0, 2, 4]
    assert rows[-2]["tokens"] == 4 * 2 * 16 * 2 * 2  # steps * batch * seq * accum * world
    # Only rank 0 writes: one log, one checkpoint, holding both ranks' sampler states.
    assert sorted(d.name for d in (full / "ckpt").glob("step-*")) == ["step-00000002", "step-00000004"]
    state = json.loads((full / "ckpt" / "step-00000004" / "state.json").read_text())
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    assert state["ranks"][0]["sampler"] != state["ranks"][1]["sampler"]

    # Resume under DDP from the step-2 checkpoint (kept by --keep 2), copied into a
    # fresh run dir with the full log: the log is cut back to step 2 and the
    # steps 3-4 equal the uninterrupted run's.
    part = tiny["root"] / "part"
    (part / "ckpt").mkdir(parents=True)
    shutil.copytree(full / "ckpt" / "step-00000002", part / "ckpt" / "step-00000002")
    (part / "ckpt" / "latest").write_text("step-00000002\n")
    shutil.copy(full / "log.jsonl", part / "log.jsonl")
    torchrun(tiny, "part", resume=True)
    a = {r["step"]: r["loss"] for r in rows if "loss" in r}
    b = {r["step"]: r["loss"] for r in log_rows(part) if "loss" in r}
    assert sorted(b) == [1, 2, 3, 4]
    for st in (3, 4):
        assert abs(a[st] - b[st]) < 1e-5, (st, a[st], b[st])
    assert [r["step"] for r in log_rows(part) if "eval_loss" in r] == [0, 2, 4]
    p0 = load(part / "params-rank0-step4.safetensors")
    for k in r0:
        assert torch.allclose(p0[k], r0[k], atol=1e-6), k


def test_ddp_rank_killed_others_exit_then_resume_continues(tiny):
    """Rank 1 SIGKILLs itself after its 3rd update (the checkpoint of step 2 is on disk):
    torchrun's elastic agent ends rank 0 and names rank 1; the same command with --resume
    on 2 ranks then continues exactly (steps 3-4 equal the uninterrupted run's)."""
    import re
    import time

    full = tiny["root"] / "full"
    if not (full / "params-rank0-step4.safetensors").exists():
        torchrun(tiny, "full")
    kill = tiny["root"] / "worker_kill.py"
    kill.write_text("import os\nif os.environ['RANK'] == '1':\n    os.environ['LESA_CPT_KILL_AT'] = 'step:3'\n" + WORKER)
    out = tiny["root"] / "killed"
    args = dict(model=str(tiny["model"]), train=str(tiny["text"]), eval=str(tiny["eval"]), out=str(out),
                cache_dir=str(tiny["root"] / "cache"), device="cpu", dtype="f32", steps=4, seq_len=16, batch=2,
                grad_accum=2, lr=1e-2, min_lr=1e-3, warmup=1, eval_every=2, eval_tokens=200, save_every=2, keep=2,
                quiet=True, resume="auto")
    af = tiny["root"] / "killed.json"
    af.write_text(json.dumps(args))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(PY_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--max-restarts", "0"]
    r = subprocess.run(cmd + [str(kill), str(af)], env=env, capture_output=True, text=True, timeout=300)
    ended = time.time()
    assert r.returncode == 1, r.stderr[-3000:]
    # The root cause torchrun reports is rank 1, killed by signal 9.
    root_cause = r.stderr[r.stderr.index("Root Cause (first observed failure)"):]
    assert re.search(r"rank\s*: 1 \(local_rank: 1\)\s+exitcode\s*: -9", root_cause), root_cause
    assert "Signal 9 (SIGKILL) received by PID" in root_cause
    # Rank 0 logged step 2 and then waited in step 3's loss all-reduce for the dead rank.
    rows = log_rows(out)
    assert max(r["step"] for r in rows if "loss" in r) == 2
    waited = ended - (out / "log.jsonl").stat().st_mtime
    assert waited < 60, f"rank 0 outlived rank 1 by up to {waited:.1f} s"
    print(f"ddp kill: torchrun exited {waited:.1f} s after rank 0's last log row")

    r = subprocess.run(cmd + [str(tiny["root"] / "worker.py"), str(af)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"lesa train: resumed from {out}/ckpt/step-00000002 at step 2" in r.stderr
    a = {r["step"]: r["loss"] for r in log_rows(full) if "loss" in r}
    b = {r["step"]: r["loss"] for r in log_rows(out) if "loss" in r}
    assert sorted(b) == [1, 2, 3, 4]
    for st in (3, 4):
        assert abs(a[st] - b[st]) < 1e-5, (st, a[st], b[st])
    ref, got = load(full / "params-rank0-step4.safetensors"), load(out / "params-rank1-step4.safetensors")
    for k in ref:
        assert torch.allclose(got[k], ref[k], atol=1e-6), k
