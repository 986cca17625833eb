"""CPT under faults: SIGKILL at fault points, corrupt checkpoints, full disks, bad caches,
foreign run dirs, and the --save-final manifest against `lesa verify`.

Every resumed run is compared with one uninterrupted reference run: same loss rows
(tolerance of test_cpt's resume test) and the same final weights. The long loop (≥ 30
kill trials) is bench/train_kill_trials.py; three kills run here.
"""

from __future__ import annotations

import hashlib
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
from _cli import lesa  # noqa: E402

from lesa_py import checkpoints, cpt  # noqa: E402
from lesa_py.data import tokenize_corpus  # noqa: E402

torch.set_num_threads(1)
PY_DIR = Path(__file__).resolve().parents[1]
ARGS = dict(steps=6, seq_len=16, batch=4, lr=1e-2, min_lr=1e-3, warmup=1, eval_every=3, eval_tokens=400,
            save_every=2, keep=2, quiet=True, device="cpu", dtype="f32")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    text = _tiny.make_text(root / "train.txt")
    held = _tiny.make_text(root / "eval.txt", n_sentences=200, seed=1)
    model = _tiny.make_model_dir(root / "model", text)
    t = dict(root=root, text=text, eval=held, model=model, cache=root / "cache")
    t["ref"] = run(t, "ref", keep=100)  # every checkpoint kept: the truth for each step
    return t


def args(tiny, out, **kw):
    a = dict(ARGS, model=str(tiny["model"]), train=str(tiny["text"]), eval=str(tiny["eval"]),
             out=str(tiny["root"] / out), cache_dir=str(tiny["cache"]))
    a.update(kw)
    return a


def run(tiny, out, **kw):
    return cpt.train(args(tiny, out, **kw))


def log_rows(out: Path):
    return [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]


def assert_same_run(tiny, out: Path, last_step: int = 6):
    """Loss/eval rows and the last checkpoint's weights equal the reference run's."""
    ref, got = log_rows(tiny["root"] / "ref"), log_rows(out)
    key = lambda r: (r["step"], "loss" in r)  # noqa: E731
    assert [key(r) for r in got] == [key(r) for r in ref]  # every row once, in order
    for a, b in zip(ref, got):
        for k in ("loss", "eval_loss"):
            if k in a:
                assert abs(a[k] - b[k]) < 1e-5, (a, b)
    from safetensors.torch import load_file

    name = f"step-{last_step:08d}/model.safetensors"
    wa, wb = load_file(str(tiny["root"] / "ref/ckpt" / name)), load_file(str(out / "ckpt" / name))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_checkpoint_is_hashed_and_a_corrupt_one_is_refused(tiny, capsys):
    ck = tiny["root"] / "ref/ckpt/step-00000004"
    sums = json.loads((ck / "checksums.json").read_text())
    assert sums["files"] == {f: sha(ck / f) for f in ("model.safetensors", "optimizer.safetensors", "state.json")}
    assert not list((tiny["root"] / "ref/ckpt").glob(".tmp-*"))

    run(tiny, "corrupt", steps=4, decay_steps=6)
    bad = tiny["root"] / "corrupt/ckpt/step-00000004/optimizer.safetensors"
    b = bytearray(bad.read_bytes())
    b[-3] ^= 0x40  # one bit in the last tensor's data: loads fine, but wrong
    bad.write_bytes(bytes(b))
    capsys.readouterr()
    s = run(tiny, "corrupt", resume=True)
    err = capsys.readouterr().err
    assert (f"lesa train: checkpoint {bad.parent} refused: optimizer.safetensors does not match its sha256"
            in err), err
    assert "; using step-00000002" in err and f"resumed from {bad.parent.parent}/step-00000002 at step 2" in err
    assert s["start_step"] == 2
    assert_same_run(tiny, tiny["root"] / "corrupt")
    # Nothing intact left to use: refused, not started over.
    for d in (tiny["root"] / "corrupt/ckpt").glob("step-*"):
        (d / "state.json").write_text("{}")
    with pytest.raises(cpt.CPTError, match="no complete checkpoint"):
        run(tiny, "corrupt", resume="auto")


def test_resume_auto_is_one_idempotent_command(tiny, capsys):
    # Fresh dir: starts. No checkpoint yet (killed before the first save): starts over, the
    # old log dropped. Strict --resume refuses the same dir.
    run(tiny, "auto", steps=1, save_every=0, resume="auto")
    with pytest.raises(cpt.CPTError, match=r"--resume: no checkpoint in .*auto/ckpt \(--resume auto starts"):
        run(tiny, "auto", resume=True)
    capsys.readouterr()
    s = run(tiny, "auto", resume="auto")
    assert "no checkpoint in" in capsys.readouterr().err and s["start_step"] == 0
    assert_same_run(tiny, tiny["root"] / "auto")
    s = run(tiny, "auto", resume="auto")  # already done: loads step 6, trains nothing
    assert s["start_step"] == 6 and s["steps"] == 6
    assert_same_run(tiny, tiny["root"] / "auto")


def test_resume_mode_parsing():
    p = cpt.build_parser()
    assert p.parse_args(["--model", "m", "--train", "t", "--out", "o", "--resume"]).resume is True
    assert p.parse_args(["--model", "m", "--train", "t", "--out", "o", "--resume", "auto"]).resume == "auto"
    assert p.parse_args(["--model", "m", "--train", "t", "--out", "o"]).resume is False
    with pytest.raises(SystemExit) as e:
        p.parse_args(["--model", "m", "--train", "t", "--out", "o", "--resume", "always"])
    assert e.value.code == 2


# After step 3's update; in the 3rd batch of step 3's evaluation (6 batches per evaluation);
# inside the second save (step 4), its model file written.
KILLS = ["step:3", "eval:9", "save.model:2"]


@pytest.mark.parametrize("point", KILLS)
def test_sigkill_then_resume_auto_continues_exactly(tiny, point):
    out = tiny["root"] / f"kill-{point.replace(':', '-')}"
    af = tiny["root"] / f"{out.name}.json"
    af.write_text(json.dumps(args(tiny, out.name, resume="auto")))
    env = dict(os.environ, LESA_CPT_KILL_AT=point, OMP_NUM_THREADS="1",
               PYTHONPATH=str(PY_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = "import json,sys; from lesa_py import cpt; cpt.train(json.load(open(sys.argv[1])))"
    r = subprocess.run([sys.executable, "-c", code, str(af)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]
    # Only complete checkpoints under real names, each equal to the reference's at that step.
    names = sorted(d.name for d in (out / "ckpt").glob("step-*")) if (out / "ckpt").exists() else []
    for n in names:
        assert checkpoints.check_complete(out / "ckpt" / n) is None
        for f in ("model.safetensors", "optimizer.safetensors"):
            assert sha(out / "ckpt" / n / f) == sha(tiny["root"] / "ref/ckpt" / n / f), (n, f)
    want = int(names[-1][5:]) if names else 0
    s = cpt.train(json.loads(af.read_text()))  # the same command again
    assert s["start_step"] == want
    assert not list((out / "ckpt").glob(".tmp-*"))
    assert_same_run(tiny, out)


def test_resume_refuses_another_model_or_data(tiny):
    run(tiny, "foreign", steps=2, save_every=2)
    other = tiny["root"] / "model2"
    if not other.exists():
        _tiny.make_model_dir(other, tiny["text"], seed=1)
    with pytest.raises(cpt.CPTError, match=r"different settings, model or data \(model: checkpoint 'lesa.json:"):
        run(tiny, "foreign", model=str(other), resume=True)
    text2 = tiny["root"] / "train2.txt"
    text2.write_text(tiny["text"].read_text() + "the cat sees the ball .\n")
    with pytest.raises(cpt.CPTError, match=r"different settings, model or data \(train_sha256: "):
        run(tiny, "foreign", train=str(text2), resume=True)
    with pytest.raises(cpt.CPTError, match=r"eval_sha256"):
        run(tiny, "foreign", eval=str(text2), resume=True)


def test_token_cache_truncated_or_foreign_is_rebuilt(tiny, tmp_path, capsys):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny["model"]))
    truth, _ = tokenize_corpus(tok, tiny["model"], tiny["text"], tmp_path)
    truth = truth.copy()
    (cache,) = tmp_path.glob("*.npy")
    good = cache.read_bytes()
    cache.write_bytes(good[: len(good) - 4000])  # cut short
    capsys.readouterr()
    ids, _ = tokenize_corpus(tok, tiny["model"], tiny["text"], tmp_path)
    assert "truncated?); rebuilding it" in capsys.readouterr().err
    assert (ids == truth).all() and cache.read_bytes() == good

    # Ids of another tokenizer (word-level, trained on other text: other ids) under this cache's name.
    other = _tiny.make_model_dir(tmp_path / "other", _tiny.make_text(tmp_path / "o.txt", 30, seed=7), manifest=False)
    otok = AutoTokenizer.from_pretrained(str(other))
    foreign, _ = tokenize_corpus(otok, other, tiny["text"], tmp_path / "o")
    assert not (foreign == truth).all()
    shutil.copy(next((tmp_path / "o").glob("*.npy")), cache)
    ids, _ = tokenize_corpus(tok, tiny["model"], tiny["text"], tmp_path)
    assert "written for another tokenizer?); rebuilding it" in capsys.readouterr().err
    assert (ids == truth).all()
    ids, _ = tokenize_corpus(tok, tiny["model"], tiny["text"], tmp_path)  # now trusted: no message
    assert capsys.readouterr().err == "" and (ids == truth).all()


def test_save_final_passes_lesa_verify_and_records_the_run(tiny):
    s = run(tiny, "final", steps=2, save_final=True)
    final = Path(s["final"])
    r = lesa("verify", final)
    assert r.stdout.strip() == f"ok: {final} matches its manifest"
    tr = json.loads((final / "lesa.json").read_text())["training"]
    assert tr["steps"] == 2 and tr["tokens"] == 2 * 4 * 16
    from lesa_py.corpus import open_corpus

    fingerprint = lambda p: open_corpus(p).fingerprint()  # noqa: E731
    assert tr["train"]["fingerprint"] == fingerprint(tiny["text"]) and tr["eval_fingerprint"] == fingerprint(tiny["eval"])
    assert tr["train"]["fingerprint"] != fingerprint(tiny["eval"])
    assert tr["trained_layers"] == _tiny.NEW_LAYERS and tr["trained_other"] is False
    # The verifier is not vacuous: one changed byte fails it.
    (final / "tokenizer_config.json").write_text((final / "tokenizer_config.json").read_text() + " ")
    assert lesa("verify", final, check=False).returncode == 2

    bare = tiny["root"] / "bare"
    _tiny.make_model_dir(bare, tiny["text"], manifest=False)
    s = run(tiny, "final_bare", model=str(bare), freeze="none", steps=1, save_final=True)
    assert lesa("verify", s["final"]).returncode == 0
    m = json.loads((Path(s["final"]) / "lesa.json").read_text())
    assert m["training"]["trained_layers"] == [0, 1, 2, 3] and m["training"]["trained_other"] is True
    assert m["new_layers"] == [] and m["layer_prefix"] == "model.layers."
    # ...and the trained bare model trains again from its own manifest.
    s2 = run(tiny, "final_bare2", model=s["final"], freeze="none", steps=1, eval=None)
    assert s2["steps"] == 1


def _mount_tmpfs(mnt: Path, size: str):
    mnt.mkdir()
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True, text=True)
    if m.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({m.stderr.strip()}); disk-full test skipped")


def test_disk_full_while_saving(tiny, tmp_path, capsys, monkeypatch):
    mnt = tmp_path / "tmpfs"
    _mount_tmpfs(mnt, "1m")
    try:
        out = mnt / "run"
        cli = ["--model", str(tiny["model"]), "--train", str(tiny["text"]), "--eval", str(tiny["eval"]),
               "--out", str(out), "--cache-dir", str(tiny["cache"]), "--steps", "6", "--seq-len", "16",
               "--batch", "4", "--lr", "1e-2", "--min-lr", "1e-3", "--warmup", "1", "--eval-every", "3",
               "--eval-tokens", "400", "--save-every", "2", "--keep", "2", "--device", "cpu", "--dtype", "f32",
               "--quiet", "--resume", "auto"]
        assert cpt.main(cli[:-2] + ["--steps", "2", "--decay-steps", "6"]) == 0
        ck2 = out / "ckpt/step-00000002"
        before = {f.name: sha(f) for f in ck2.iterdir()}
        free = checkpoints.free_bytes(mnt)
        (mnt / "filler").write_bytes(b"\0" * (free - 60_000))  # room for the log, not for a checkpoint
        capsys.readouterr()
        assert cpt.main(cli) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and err[0].startswith("lesa train: resumed from"), err
        assert err[1].startswith(f"lesa train: error: disk full writing checkpoint step-00000004 to {out}/ckpt: "
                                 "it needs "), err
        assert f"the previous checkpoint {ck2} is intact" in err[1]
        need = int(err[1].split("it needs ")[1].split(" bytes")[0])
        ref = tiny["root"] / "ref/ckpt/step-00000004"
        assert sum(f.stat().st_size for f in ref.iterdir()) <= need  # the figure covers the real size
        assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["latest", "step-00000002"]
        assert {f.name: sha(f) for f in ck2.iterdir()} == before

        # The disk fills during the write (the free-space check passed): same line, nothing left.
        real = checkpoints.free_bytes
        monkeypatch.setattr(checkpoints, "free_bytes", lambda p, n=[0]: n.append(1) or (1 << 40 if len(n) == 2 else real(p)))
        assert cpt.main(cli) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("lesa train: error: disk full writing checkpoint step-00000004"), err
        assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["latest", "step-00000002"]
        monkeypatch.undo()

        (mnt / "filler").unlink()
        assert cpt.main(cli) == 0
        assert_same_run(tiny, out)
    finally:
        import gc

        gc.collect()  # a failed assertion's traceback may still hold files open on the tmpfs
        u = subprocess.run(["umount", str(mnt)], capture_output=True, text=True)
        assert u.returncode == 0, u.stderr
