"""lesa_py.eval perplexity against direct transformers computations."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from lesa_py.eval import UserError, evaluate, main, windows

REL = 1e-4

pytestmark = pytest.mark.usefixtures("single_thread")


def rel(a, b):
    return abs(a - b) / abs(b)


def direct_nll(model, ids):
    """Mean NLL from one plain forward with labels (transformers' own shifted loss)."""
    with torch.no_grad():
        return float(model(ids[None], labels=ids[None]).loss)


def strided_nll(model, ids, window, stride):
    """Independent strided reference from the definition: token p is scored by the first
    window [k*stride, k*stride+window) that contains it, k = floor((p-window)/stride) + 1
    (0 if p < window), from a full forward over that window."""
    n, total, cache = len(ids), 0.0, {}
    for p in range(1, n):
        k = (p - window) // stride + 1 if p >= window else 0
        if k not in cache:
            x = ids[k * stride: min(k * stride + window, n)]
            with torch.no_grad():
                cache[k] = torch.log_softmax(model(x[None]).logits[0].double(), -1)
        total -= float(cache[k][p - 1 - k * stride, ids[p]])
    return total / (n - 1)


@pytest.mark.parametrize("n,window,stride", [(10, 4, 2), (100, 32, 8), (33, 16, 15), (5, 8, 4), (2, 2, 1)])
def test_windows_score_each_token_once(n, window, stride):
    seen = []
    for b, e, t in windows(n, window, stride):
        assert 0 <= b < e <= n and e - b <= window and t <= e - b
        assert b == 0 or e - t - b >= window - stride  # context of the first scored token
        assert b == 0 or e - t > b
        seen += range(max(e - t, 1), e)
    assert seen == list(range(1, n))


def test_windows_reject_bad_stride():
    for stride in (0, 4, 5):
        with pytest.raises(UserError):
            windows(10, 4, stride)


@pytest.mark.parametrize("name", ["tiny-llama-f32", "tiny-gemma3-f32"])
def test_single_window_matches_forward(loaded, moby, name):
    model, tok = loaded(name)
    ids = tok(moby[:3000], return_tensors="pt").input_ids[0][:300]
    res = evaluate(model, ids, window=1024, stride=512)
    assert res["tokens"] == len(ids) - 1
    assert rel(res["nll"], direct_nll(model, ids)) <= REL
    assert math.isclose(res["ppl"], math.exp(res["nll"]))


@pytest.mark.parametrize("name,window,stride,batch", [
    ("tiny-llama-f32", 64, 24, 1), ("tiny-qwen3-f32", 96, 32, 3), ("tiny-mistral-f32", 50, 49, 2)])
def test_strided_matches_reference(loaded, moby, name, window, stride, batch):
    model, tok = loaded(name)
    ids = tok(moby[:3000], return_tensors="pt").input_ids[0][:257]
    res = evaluate(model, ids, window=window, stride=stride, batch=batch)
    assert res["tokens"] == 256
    assert rel(res["nll"], strided_nll(model, ids, window, stride)) <= REL


def test_smollm2_perplexity(loaded, moby):
    """The real model, a few hundred tokens: CLI-path evaluate == one plain forward."""
    model, tok = loaded("smollm2-135m")
    text = moby[moby.index("Call me Ishmael"):][:1500]
    ids = tok(text, return_tensors="pt").input_ids[0][:160]
    res = evaluate(model, tok, text, max_tokens=160)
    assert res["tokens"] == 159
    assert rel(res["nll"], direct_nll(model, ids)) <= REL
    assert 2 < res["ppl"] < 100  # a real LM on real English


def run_cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "lesa_py.eval", *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_cli_json_and_progress(fx, loaded, moby, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(moby[:5000], encoding="utf-8")
    d = fx("tiny-llama-f32")
    r = run_cli(d, "--text", text, "--max-tokens", 150, "--window", 64, "--stride", 32, "--json", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"tokens", "nll", "ppl", "seconds", "documents", "data_sha256"} and out["tokens"] == 149
    assert "ETA" in r.stderr and "149/149" in r.stderr
    model, tok = loaded("tiny-llama-f32")
    ref = evaluate(model, tok, moby[:5000], max_tokens=150, window=64, stride=32)
    assert rel(out["nll"], ref["nll"]) <= REL


def test_cli_user_errors(fx, tmp_path, capsys):
    pickle_only = tmp_path / "ck"
    pickle_only.mkdir()
    (pickle_only / "config.json").write_text((fx("tiny-llama-f32") / "config.json").read_text())
    (pickle_only / "pytorch_model.bin").write_bytes(b"\0")
    text = tmp_path / "t.txt"
    text.write_text("hello world", encoding="utf-8")
    good = fx("tiny-llama-f32")
    for args in [(pickle_only, "--text", text), (good, "--text", tmp_path / "missing.txt"),
                 (tmp_path, "--text", text), (good, "--text", text, "--window", 8, "--stride", 16)]:
        assert main([*map(str, args), "--quiet"]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("lesa eval: error:"), err
    main([str(pickle_only), "--text", str(text)])
    assert "pickle" in capsys.readouterr().err
