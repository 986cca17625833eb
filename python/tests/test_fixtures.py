"""Fixtures build correctly; hfcheck accepts them and rejects damaged copies."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import TINY
from lesa_py.testing import fixtures, hfcheck
from lesa_py.testing.hfcheck import check

pytestmark = pytest.mark.usefixtures("single_thread")


def tensors(d):
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        with safe_open(f, framework="pt") as sf:
            out.update({k: (f.name, sf.get_slice(k).get_shape(), sf.get_slice(k).get_dtype()) for k in sf.keys()})
    return out


@pytest.mark.parametrize("name", TINY)
def test_tiny_fixture_files(fx, name):
    d = fx(name)
    cfg = json.loads((d / "config.json").read_text())
    shards = sorted(d.glob("*.safetensors"))
    assert len(shards) >= 2
    index = json.loads((d / "model.safetensors.index.json").read_text())
    ts = tensors(d)
    assert index["weight_map"] == {k: f for k, (f, _, _) in ts.items()}
    want = {"f32": "F32", "bf16": "BF16"}[name.rsplit("-", 1)[1]]
    assert {dt for _, _, dt in ts.values()} == {want}
    assert cfg["dtype"] == {"f32": "float32", "bf16": "bfloat16"}[name.rsplit("-", 1)[1]]
    assert cfg["num_key_value_heads"] < cfg["num_attention_heads"]
    assert 6 <= cfg["num_hidden_layers"] <= 8
    assert cfg["vocab_size"] == 49152
    assert (d / "generation_config.json").is_file() and (d / "tokenizer.json").is_file()
    if "qwen2" in name:
        assert "model.layers.0.self_attn.q_proj.bias" in ts and "lm_head.weight" not in ts
    if "qwen3" in name:
        assert "model.layers.0.self_attn.q_norm.weight" in ts and cfg["use_sliding_window"]
    if "qwen3" in name or "gemma" in name:
        assert set(cfg["layer_types"]) == {"sliding_attention", "full_attention"}
    if "olmo2" in name:
        assert "model.layers.0.self_attn.q_norm.weight" in ts and "model.layers.0.input_layernorm.weight" not in ts
    if "gemma3" in name:
        assert cfg["model_type"] == "gemma3_text" and cfg["architectures"] == ["Gemma3ForCausalLM"]


@pytest.mark.parametrize("arch", list(fixtures.TINY))
def test_bf16_is_f32_rounded(fx, arch):
    """The two variants hold the same seeded weights."""
    def load(d):
        out = {}
        for f in d.glob("*.safetensors"):
            out.update(load_file(f))
        return out
    a, b = load(fx(f"{arch}-f32")), load(fx(f"{arch}-bf16"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k].to(torch.bfloat16), b[k]), k


def test_text_fixture(fx):
    d = fx("text")
    moby = (d / "moby-dick.txt").read_text(encoding="utf-8")
    sotu = (d / "sotu.txt").read_text(encoding="utf-8")
    assert "Call me Ishmael" in moby and len(moby) > 1_000_000
    assert sotu.startswith("Fellow-Citizens") and len(sotu) > 5_000_000


def test_text_docs_fixture(fx):
    """One JSONL row per SOTU speech: the same text as sotu.txt, with its document boundaries."""
    rows = [json.loads(l) for l in (fx("text-docs") / "sotu.jsonl").read_text(encoding="utf-8").splitlines()]
    sotu = (fx("text") / "sotu.txt").read_text(encoding="utf-8")
    assert len(rows) == 233 and rows[0]["year"] == 1790 and rows[0]["president"] == "george washington"
    assert [r["year"] for r in rows] == sorted(r["year"] for r in rows)
    assert "\n\n".join(r["text"] for r in rows) + "\n" == sotu


def test_smollm2_fixture(fx):
    d = fx("smollm2-135m")
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg
    assert [p.name for p in d.glob("*.safetensors")] == ["model.safetensors"]
    assert {dt for _, _, dt in tensors(d).values()} == {"F32"}


def test_gemma3_fixture(fx):
    d = fx("gemma3-270m")  # skipped unless built by scripts/fixtures.sh
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_type"] == "gemma3_text" and cfg["num_hidden_layers"] == 18
    assert {dt for _, _, dt in tensors(d).values()} == {"F32"}


def test_path_errors(monkeypatch, tmp_path):
    with pytest.raises(KeyError):
        fixtures.path("no-such-fixture")
    monkeypatch.setenv("LESA_FIXTURES", str(tmp_path))
    assert fixtures.root() == tmp_path
    with pytest.raises(FileNotFoundError):
        fixtures.path("tiny-llama-f32")


@pytest.mark.parametrize("name", TINY)
def test_hfcheck_accepts_fixture(fx, name):
    rep = check(fx(name))
    assert rep["ok"], rep["problems"]
    assert rep["tensors_compared"] == len(tensors(fx(name)))
    assert bool(rep["tied"]) == json.loads((fx(name) / "config.json").read_text())["tie_word_embeddings"]


def _damage(src, dst, fn):
    """Copy checkpoint src to dst, applying fn(tensors: dict) to the shard holding layer 1's q_proj."""
    shutil.copytree(src, dst)
    index_path = dst / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    key = "model.layers.1.self_attn.q_proj.weight"
    shard = dst / index["weight_map"][key]
    ts = load_file(shard)
    fn(ts, key)
    save_file(ts, shard, metadata={"format": "pt"})
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if k in ts or v != shard.name}
    index_path.write_text(json.dumps(index))
    return dst


def test_hfcheck_rejects_removed_tensor(fx, tmp_path, capsys):
    d = _damage(fx("tiny-llama-f32"), tmp_path / "ck", lambda ts, k: ts.pop(k))
    rep = check(d)
    assert not rep["ok"]
    assert any("q_proj" in p for p in rep["problems"]), rep["problems"]
    assert hfcheck.main([str(d)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_hfcheck_rejects_wrong_shape(fx, tmp_path):
    def shrink(ts, k):
        ts[k] = ts[k][:-16].contiguous()
    rep = check(_damage(fx("tiny-qwen3-bf16"), tmp_path / "ck", shrink))
    assert not rep["ok"]
    assert any("q_proj" in p for p in rep["problems"]), rep["problems"]


def test_hfcheck_rejects_changed_config(fx, tmp_path):
    d = tmp_path / "ck"
    shutil.copytree(fx("tiny-gemma3-f32"), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["num_hidden_layers"] += 1  # layer_types no longer matches
    (d / "config.json").write_text(json.dumps(cfg))
    assert not check(d)["ok"]
