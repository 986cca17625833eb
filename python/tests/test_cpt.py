"""CPT trainer on a tiny Llama built in the session (CPU, f32, single process)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _tiny  # noqa: E402

from lesa_py import cpt  # noqa: E402
from lesa_py.data import WindowSampler, eval_windows, tokenize_corpus  # noqa: E402

# The models are tiny: thread start-up and contention cost more than the math.
torch.set_num_threads(1)

BASE = dict(steps=3, seq_len=16, batch=4, grad_accum=1, lr=1e-2, min_lr=1e-3, warmup=1,
            eval_every=2, eval_tokens=400, save_every=0, quiet=True, device="cpu", dtype="f32")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpt")
    text = _tiny.make_text(root / "train.txt")
    held = _tiny.make_text(root / "eval.txt", n_sentences=200, seed=1)
    model = _tiny.make_model_dir(root / "model", text)
    bare = _tiny.make_model_dir(root / "bare", text, manifest=False)
    return dict(root=root, text=text, eval=held, model=model, bare=bare, cache=root / "cache")


def run(tiny, out, **kw):
    args = dict(BASE, model=str(tiny["model"]), train=str(tiny["text"]), eval=str(tiny["eval"]),
                out=str(tiny["root"] / out), cache_dir=str(tiny["cache"]))
    args.update(kw)
    return cpt.train(args)


def rows(summary):
    return [json.loads(l) for l in Path(summary["log"]).read_text().splitlines()]


def state_dict(d):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32).state_dict()


def test_freeze_original_trains_only_new_layers(tiny):
    s = run(tiny, "frozen", freeze="original", save_final=True)
    before, after = state_dict(tiny["model"]), state_dict(s["final"])
    assert before.keys() == after.keys()
    new = tuple(f"model.layers.{i}." for i in _tiny.NEW_LAYERS)
    n_new = 0
    for k in before:
        if k.startswith(new):
            n_new += 1
            assert not torch.equal(before[k], after[k]), f"new-layer tensor {k} did not change"
        else:
            assert torch.equal(before[k], after[k]), f"frozen tensor {k} changed"
    assert n_new == 2 * 9  # 7 projections + 2 norms per layer
    assert s["trainable_params"] < s["total_params"]
    # The manifest travels with the trained checkpoint, its file hashes updated.
    man = json.loads((Path(s["final"]) / "lesa.json").read_text())
    assert man["new_layers"] == _tiny.NEW_LAYERS
    assert set(man["files"]) >= {"model.safetensors", "config.json"}
    from lesa_py.data import sha256_file

    assert man["files"]["model.safetensors"] == sha256_file(Path(s["final"]) / "model.safetensors")


def test_freeze_none_trains_everything_tied_embeddings(tiny):
    s = run(tiny, "full", freeze="none", save_final=True)
    before, after = state_dict(tiny["model"]), state_dict(s["final"])
    for k in before:
        assert not torch.equal(before[k], after[k]), f"tensor {k} did not change"
    # Tied: the head is the (trained) embedding, not a stale copy.
    assert torch.equal(after["lm_head.weight"], after["model.embed_tokens.weight"])
    assert s["trainable_params"] == s["total_params"]


def test_resume_continues_exactly(tiny):
    common = dict(steps=6, save_every=3, eval_every=3)
    full = run(tiny, "r_full", **common)
    part = run(tiny, "r_part", **dict(common, steps=3, decay_steps=6))
    assert part["steps"] == 3 and Path(part["checkpoint"]).name == "step-00000003"
    resumed = run(tiny, "r_part", **dict(common, resume=True))
    assert resumed["start_step"] == 3 and resumed["steps"] == 6
    a = {r["step"]: r for r in rows(full) if "loss" in r}
    b = {r["step"]: r for r in rows(resumed) if "loss" in r}
    assert sorted(b) == [1, 2, 3, 4, 5, 6]  # the resumed log continues the first one, no duplicates
    for st in (4, 5, 6):
        assert abs(a[st]["loss"] - b[st]["loss"]) < 1e-5, (st, a[st], b[st])
        assert a[st]["lr"] == b[st]["lr"] and a[st]["tokens"] == b[st]["tokens"]
    ev_a = [(r["step"], r["eval_loss"]) for r in rows(full) if "eval_loss" in r]
    ev_b = [(r["step"], r["eval_loss"]) for r in rows(resumed) if "eval_loss" in r]
    assert [s for s, _ in ev_b] == [0, 3, 6]
    assert np.allclose([v for _, v in ev_a], [v for _, v in ev_b], atol=1e-5)
    # Same weights at the end.
    from safetensors.torch import load_file

    wa = load_file(str(Path(full["checkpoint"]) / "model.safetensors"))
    wb = load_file(str(Path(resumed["checkpoint"]) / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def test_resume_refuses_changed_settings(tiny):
    run(tiny, "r_changed", steps=2, save_every=2)
    with pytest.raises(cpt.CPTError, match="different settings.*seq_len"):
        run(tiny, "r_changed", steps=4, save_every=2, seq_len=8, resume=True)


def test_log_every_step_and_eval_rows(tiny):
    s = run(tiny, "log", steps=5, eval_every=2, grad_accum=2)
    rs = rows(s)
    train = [r for r in rs if "loss" in r]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5]
    for r in train:
        assert {"step", "loss", "lr", "tokens", "elapsed"} <= r.keys()
        assert np.isfinite(r["loss"]) and r["lr"] > 0
    assert train[-1]["tokens"] == 5 * 4 * 16 * 2
    ev = [r for r in rs if "eval_loss" in r]
    assert [r["step"] for r in ev] == [0, 2, 4, 5]
    for r in ev:
        assert r.keys() == {"step", "eval_loss", "eval_ppl"}
        assert abs(np.exp(r["eval_loss"]) - r["eval_ppl"]) < 1e-6 * r["eval_ppl"]
    assert s["final_eval_loss"] == ev[-1]["eval_loss"]
    # The loss goes down on this (very learnable) text.
    assert ev[-1]["eval_loss"] < ev[0]["eval_loss"]


def test_same_seed_same_run(tiny):
    a = rows(run(tiny, "seed_a", steps=2, eval=None))
    b = rows(run(tiny, "seed_b", steps=2, eval=None))
    c = rows(run(tiny, "seed_c", steps=2, eval=None, seed=1))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert [r["loss"] for r in a] != [r["loss"] for r in c]


def test_user_errors(tiny):
    with pytest.raises(cpt.CPTError, match="lesa.json"):
        run(tiny, "e1", model=str(tiny["bare"]), freeze="original")
    with pytest.raises(cpt.CPTError, match="needs CUDA"):
        run(tiny, "e2", fsdp=True)
    with pytest.raises(cpt.CPTError, match="no checkpoint"):
        run(tiny, "e3", resume=True)
    run(tiny, "e4", steps=1)
    with pytest.raises(cpt.CPTError, match="already holds a run"):
        run(tiny, "e4", steps=1)
    with pytest.raises(cpt.CPTError, match="unknown option"):
        run(tiny, "e5", stepz=3)
    with pytest.raises(cpt.CPTError, match="--min-lr"):
        run(tiny, "e6", min_lr=1.0)
    pick = tiny["root"] / "pickled"
    pick.mkdir()
    (pick / "config.json").write_text("{}")
    (pick / "pytorch_model.bin").write_bytes(b"\x80\x04.")
    with pytest.raises(cpt.CPTError, match="pickle checkpoints .* refused"):
        run(tiny, "e7", model=str(pick))
    # The CLI turns user errors into one line and exit status 2.
    rc = cpt.main(["--model", str(tiny["bare"]), "--train", str(tiny["text"]), "--out", str(tiny["root"] / "e8"),
                   "--device", "cpu", "--quiet"])
    assert rc == 2


def test_freeze_none_without_manifest(tiny):
    s = run(tiny, "bare_none", model=str(tiny["bare"]), freeze="none", steps=1, eval=None)
    assert s["trainable_params"] == s["total_params"]


def test_lr_schedule():
    c = cpt._config(dict(model="m", train="t", out="o", steps=100, warmup=10, lr=1.0, min_lr=0.1))
    lrs = [cpt.lr_at(i, c) for i in range(101)]
    assert lrs[0] == pytest.approx(1 / 11) and lrs[9] == pytest.approx(10 / 11)
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(0.1)
    assert cpt.lr_at(55, c) == pytest.approx(0.55)  # half-way down the cosine


def test_data_cache_sampler_and_eval_windows(tiny, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny["model"]))
    ids, info = tokenize_corpus(tok, tiny["model"], tiny["text"], tmp_path)
    cached = list(tmp_path.glob("*.npy"))
    assert len(cached) == 1 and info["tokens"] == len(ids) > 1000
    mtime = cached[0].stat().st_mtime_ns
    ids2, _ = tokenize_corpus(tok, tiny["model"], tiny["text"], tmp_path)
    assert cached[0].stat().st_mtime_ns == mtime and np.array_equal(ids, ids2)  # reused, not rebuilt
    assert tok.decode(ids[:3].tolist()).split() == tiny["text"].read_text().split()[:3]

    s0, s1 = WindowSampler(ids, 16, 4, seed=0, rank=0), WindowSampler(ids, 16, 4, seed=0, rank=1)
    b0 = s0.next_batch()
    assert b0.shape == (4, 17)
    assert not np.array_equal(b0, s1.next_batch())  # ranks draw different streams
    st = s0.state_dict()
    nxt = s0.next_batch()
    s2 = WindowSampler(ids, 16, 4, seed=123, rank=0)
    s2.load_state_dict(json.loads(json.dumps(st)))  # survives JSON
    assert np.array_equal(s2.next_batch(), nxt)

    w = eval_windows(ids, 16, 100)
    assert w.shape == (6, 17)  # starts 0, 16, ..., 80; the last ends at token 96 < 100
    assert np.array_equal(w[1, 0], ids[16]) and np.array_equal(w[0, -1], ids[16])
