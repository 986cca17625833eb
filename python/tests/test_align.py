"""Neuron alignment (`--align`, `ot-fuse`): permutations keep every layer's function, the
written original layers are exact unit permutations of the input's, ot-fuse's new layers
are the mean of their aligned neighbours, and a planted permutation is undone. Checked by
transformers' logits and by reading tensors back, independent of the TypeScript."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from _cli import layers_of, lesa, manifest
from test_expand import ARCHS, UNALIGNABLE, logits, tensors


def config(d: Path) -> dict:
    return json.loads((d / "config.json").read_text())


@pytest.mark.parametrize("method", ["ot-fuse", "lesa --align --zero-out"])
@pytest.mark.parametrize("arch", [a for a in ARCHS if a not in UNALIGNABLE])
def test_aligned_identity_expansions_keep_the_logits(fx, tmp_path, moby, arch, method):
    """Every original layer is written permuted and the new ones are silenced: the grown model
    must compute exactly what the original does (a wrong head/unit permutation would not)."""
    from transformers import AutoTokenizer
    src = fx(f"tiny-{arch}-f32")
    out = tmp_path / "out"
    name, *flags = method.split()
    lesa("expand", src, "-o", out, "--method", name, "--target-layers", layers_of(src) + 2, "--epochs", "1", "--quiet", *flags)
    ids = AutoTokenizer.from_pretrained(src)(moby[5000:6500], return_tensors="pt").input_ids[:, :128]
    assert (logits(src, ids) - logits(out, ids)).abs().max().item() <= 1e-5
    assert manifest(out)["options"]["align"] is True


def row_perm(out_rows: torch.Tensor, in_rows: torch.Tensor) -> list[int]:
    """Index into in_rows of every row of out_rows, by exact bytes (rows are distinct)."""
    where = {bytes(r.contiguous().view(torch.uint8).numpy()): i for i, r in enumerate(in_rows)}
    assert len(where) == len(in_rows), "rows are not distinct"
    return [where[bytes(r.contiguous().view(torch.uint8).numpy())] for r in out_rows]


def test_written_layers_are_unit_permutations_and_new_ones_the_aligned_mean(fx, tmp_path):
    src = fx("tiny-qwen2-bf16")  # grouped-query heads, q/k/v biases, bf16
    cfg = config(src)
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // nh
    out = tmp_path / "out"
    lesa("expand", src, "-o", out, "--method", "ot-fuse", "--target-layers", layers_of(src) + 2, "--quiet")
    s, o, m = tensors(src), tensors(out), manifest(out)
    P = m["layer_prefix"]
    for layer in m["layers"]:
        if layer["kind"] != "original":
            continue
        a, b = f"{P}{layer['source']}.", f"{P}{layer['out']}."
        # MLP: one permutation of units for gate rows, up rows and down columns
        p = row_perm(o[b + "mlp.gate_proj.weight"], s[a + "mlp.gate_proj.weight"])
        assert sorted(p) == list(range(len(p)))
        assert torch.equal(o[b + "mlp.up_proj.weight"], s[a + "mlp.up_proj.weight"][p])
        assert torch.equal(o[b + "mlp.down_proj.weight"], s[a + "mlp.down_proj.weight"][:, p])
        # heads: q rows in head blocks, the same head order for o's columns; kv heads keep their query groups
        heads = lambda w, n: w.reshape(n, hd, -1)
        qp = row_perm(heads(o[b + "self_attn.q_proj.weight"], nh).flatten(1), heads(s[a + "self_attn.q_proj.weight"], nh).flatten(1))
        kp = row_perm(heads(o[b + "self_attn.k_proj.weight"], nkv).flatten(1), heads(s[a + "self_attn.k_proj.weight"], nkv).flatten(1))
        g = nh // nkv
        assert [h // g for h in qp] == [kp[h // g] for h in range(nh)], "a query head left its kv group"
        idx = torch.tensor([h * hd + i for h in qp for i in range(hd)])
        kidx = torch.tensor([h * hd + i for h in kp for i in range(hd)])
        assert torch.equal(o[b + "self_attn.o_proj.weight"], s[a + "self_attn.o_proj.weight"][:, idx])
        assert torch.equal(o[b + "self_attn.q_proj.bias"], s[a + "self_attn.q_proj.bias"][idx])
        for t in ("v_proj.weight", "k_proj.bias", "v_proj.bias"):
            assert torch.equal(o[b + "self_attn." + t], s[a + "self_attn." + t][kidx]), t
        for t in ("input_layernorm.weight", "post_attention_layernorm.weight"):
            assert torch.equal(o[b + t], s[a + t])
    outs = {l["source"]: l["out"] for l in m["layers"] if l["kind"] == "original"}
    for layer in m["layers"]:
        if layer["kind"] != "new":
            continue
        j = layer["source"]
        n, left, right = f"{P}{layer['out']}.", f"{P}{outs[j]}.", f"{P}{outs[j + 1]}."
        for k in o:
            if not k.startswith(n):
                continue
            suf = k[len(n):]
            if suf in ("self_attn.o_proj.weight", "mlp.down_proj.weight"):
                assert not o[k].any(), f"{suf} of an identity block must be zero"
                continue
            want = ((o[left + suf].float() + o[right + suf].float()) / 2).to(o[k].dtype)
            assert torch.equal(o[k], want), suf


def plant_permutations(src: Path, dst: Path, seed: int = 0) -> None:
    """A checkpoint whose every layer is layer 0 with its MLP units and heads (kv groups and the
    query heads inside each group) shuffled: a perfect alignment maps all layers onto layer 0."""
    shutil.copytree(src, dst)
    for f in dst.glob("*.safetensors*"):
        f.unlink()
    t = tensors(src)
    cfg = config(src)
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    g = nh // nkv
    P = "model.layers."
    gen = torch.Generator().manual_seed(seed)
    for i in range(1, cfg["num_hidden_layers"]):
        mp = torch.randperm(cfg["intermediate_size"], generator=gen)
        kp = torch.randperm(nkv, generator=gen).tolist()
        qp = [kp[a] * g + w for a in range(nkv) for w in torch.randperm(g, generator=gen).tolist()]
        qi = torch.tensor([h * hd + e for h in qp for e in range(hd)])
        ki = torch.tensor([h * hd + e for h in kp for e in range(hd)])
        for k in [k for k in t if k.startswith(f"{P}0.")]:
            suf = k[len(f"{P}0."):]
            w = t[k].clone()
            if suf in ("mlp.gate_proj.weight", "mlp.up_proj.weight"):
                w = w[mp]
            elif suf == "mlp.down_proj.weight":
                w = w[:, mp]
            elif suf == "self_attn.q_proj.weight":
                w = w[qi]
            elif suf in ("self_attn.k_proj.weight", "self_attn.v_proj.weight"):
                w = w[ki]
            elif suf == "self_attn.o_proj.weight":
                w = w[:, qi]
            t[f"{P}{i}.{suf}"] = w.contiguous()
    save_file(t, str(dst / "model.safetensors"), metadata={"format": "pt"})


def test_planted_permutations_are_undone(fx, tmp_path):
    src = tmp_path / "planted"
    plant_permutations(fx("tiny-llama-f32"), src)
    out = tmp_path / "out"
    p = lesa("expand", src, "-o", out, "--method", "ot-fuse", "--target-layers", layers_of(src) + 2, "--json")
    stats = json.loads(p.stdout)["alignment"]
    assert stats["mlpCosineAfter"] > 0.999999 and stats["attnCosineAfter"] > 0.999999
    assert stats["mlpCosineBefore"] < 0.5
    o = tensors(out)
    P = "model.layers."
    for layer in manifest(out)["layers"]:
        for suf in ("mlp.gate_proj.weight", "mlp.up_proj.weight", "self_attn.q_proj.weight",
                    "self_attn.k_proj.weight", "self_attn.v_proj.weight"):
            assert torch.equal(o[f"{P}{layer['out']}.{suf}"], o[f"{P}0.{suf}"]), (layer, suf)
        if layer["kind"] == "original":
            for suf in ("mlp.down_proj.weight", "self_attn.o_proj.weight"):
                assert torch.equal(o[f"{P}{layer['out']}.{suf}"], o[f"{P}0.{suf}"]), (layer, suf)


def test_align_is_refused_where_it_changes_nothing(fx, tmp_path):
    src = fx("tiny-llama-f32")
    p = lesa("expand", src, "-o", tmp_path / "o", "--method", "copy", "--align", "--target-layers", 10, check=False)
    assert p.returncode == 2 and "--align changes only" in p.stderr
    assert not (tmp_path / "o").exists()
