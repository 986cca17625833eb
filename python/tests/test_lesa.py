"""LESA: the decomposition against torch's SVD, the predicted layers, determinism."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lesa_py.testing import hfcheck
from _cli import layers_of, lesa, manifest, tree_hash


def read(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


@pytest.fixture(scope="module")
def smol_factors(fx, tmp_path_factory):
    out = tmp_path_factory.mktemp("dec") / "factors.safetensors"
    lesa("decompose", fx("smollm2-135m"), "-o", out, "--types", "q_proj,k_proj,gate_proj,down_proj", "--quiet")
    return read(out), read(fx("smollm2-135m") / "model.safetensors")


@pytest.mark.parametrize("type_,module", [("q_proj", "self_attn"), ("k_proj", "self_attn"), ("gate_proj", "mlp"), ("down_proj", "mlp")])
def test_decomposition_reconstructs_every_layer_and_matches_svdvals(smol_factors, type_, module):
    f, w = smol_factors
    U, S, V = f[f"{type_}.U"], f[f"{type_}.S"], f[f"{type_}.V"]
    Ws = [w[f"model.layers.{i}.{module}.{type_}.weight"] for i in range(V.shape[0])]
    US = U * S  # f64
    for i, Wi in enumerate(Ws):
        rec = US @ V[i].double()
        rel = ((rec - Wi.double()).norm() / Wi.double().norm()).item()
        assert rel <= 1e-5, (type_, i, rel)
    # svdvals of the wide stack through its R factor (Householder QR of the tall transpose:
    # the same singular values, what LAPACK does first for such shapes): ~6x faster here than
    # svdvals of the stack itself, agreeing to 1e-14, and still not the Gram matrix lesa uses.
    ref = torch.linalg.svdvals(torch.linalg.qr(torch.cat(Ws, dim=1).double().T, mode="r").R)[: S.numel()]
    assert torch.all(S[:-1] >= S[1:]), "singular values must be sorted descending"
    assert ((S - ref).abs() / ref[0]).max().item() <= 1e-4
    assert ((S - ref).abs() / ref.clamp_min(1e-12)).max().item() <= 1e-4


def test_predicted_layers_load_and_are_not_copies(fx, tmp_path):
    src = fx("tiny-qwen2-f32")
    L = layers_of(src)
    out = tmp_path / "out"
    lesa("expand", src, "-o", out, "--method", "lesa", "--target-layers", L + 2, "--epochs", "3", "--fill", "mean", "--quiet")
    assert hfcheck.check(out)["ok"]
    m = manifest(out)
    src_t, out_t = read_all(src), read_all(out)
    prefix = m["layer_prefix"]
    linear = [k.split(".", 3)[3] for k in src_t if k.startswith(f"{prefix}0.") and k.endswith("proj.weight")]
    assert len(linear) == 7
    for new in m["new_layers"]:
        for suf in linear:
            got = out_t[f"{prefix}{new}.{suf}"]
            assert torch.isfinite(got).all()
            for i in range(L):
                assert not torch.equal(got, src_t[f"{prefix}{i}.{suf}"]), f"new layer {new} {suf} is a copy of layer {i}"
        # --fill mean: biases and norms are the neighbours' mean
        j = next(l for l in m["layers"] if l["out"] == new)["between"][0]
        b = f"self_attn.q_proj.bias"
        assert torch.equal(out_t[f"{prefix}{new}.{b}"], (src_t[f"{prefix}{j}.{b}"] + src_t[f"{prefix}{j + 1}.{b}"]) / 2)


def read_all(d: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        out.update(read(f))
    return out


def test_fill_layer0_and_zero_out(fx, tmp_path):
    src = fx("tiny-llama-f32")
    L = layers_of(src)
    out = tmp_path / "out"
    lesa("expand", src, "-o", out, "--method", "lesa", "--target-layers", L + 1, "--epochs", "2", "--fill", "layer0", "--zero-out", "--quiet")
    m = manifest(out)
    s, o = read_all(src), read_all(out)
    new = m["new_layers"][0]
    assert torch.equal(o[f"model.layers.{new}.input_layernorm.weight"], s["model.layers.0.input_layernorm.weight"])
    assert torch.count_nonzero(o[f"model.layers.{new}.self_attn.o_proj.weight"]) == 0
    assert torch.count_nonzero(o[f"model.layers.{new}.mlp.down_proj.weight"]) == 0
    assert torch.count_nonzero(o[f"model.layers.{new}.mlp.gate_proj.weight"]) > 0


def test_defaults_are_the_notebooks_and_lesa_json_records_the_budget(fx, tmp_path):
    """No LESA option given: 10 epochs and layer 0's norms/biases; the manifest holds the steps each type trained."""
    src = fx("tiny-qwen2-f32")
    L = layers_of(src)
    s = read_all(src)
    out = tmp_path / "default"
    p = lesa("expand", src, "-o", out, "--method", "lesa", "--target-layers", L + 1, "--json")
    o, m = manifest(out)["options"], manifest(out)
    assert (o["epochs"], o["fill"], o["predictorSteps"]) == (10, "layer0", None)
    assert (o["batch"], o["lambda"], o["hidden"]) == (64, 5e-4, 256)
    # Second way: an epoch is ceil((L-2) * rank / 64) steps, rank = min(rows, L * cols).
    expected = {}
    for name, w in s.items():
        if name.startswith("model.layers.0.") and w.ndim == 2:
            rows, cols = w.shape
            expected[name.split(".")[-2]] = 10 * -(-(L - 2) * min(rows, L * cols) // 64)
    assert o["stepsPerType"] == expected
    trained = {e["type"]: e["steps"] for e in map(json.loads, p.stderr.splitlines()) if e.get("event") == "phase" and e.get("name") == "predict"}
    assert trained == expected
    new, t = m["new_layers"][0], read_all(out)
    for name, w in s.items():
        if name.startswith("model.layers.0.") and w.ndim == 1:  # norms and biases: layer 0's, bit for bit
            assert torch.equal(t[name.replace("layers.0.", f"layers.{new}.")], w), name

    fixed = tmp_path / "fixed"
    p = lesa("expand", src, "-o", fixed, "--method", "lesa", "--target-layers", L + 1, "--predictor-steps", "7", "--json")
    o = manifest(fixed)["options"]
    assert (o["predictorSteps"], o["epochs"]) == (7, None)
    assert o["stepsPerType"] == {k: 7 for k in expected}
    assert {e["type"]: e["steps"] for e in map(json.loads, p.stderr.splitlines()) if e.get("name") == "predict" and e.get("event") == "phase"} == o["stepsPerType"]
    bad = lesa("expand", src, "-o", tmp_path / "bad", "--method", "lesa", "--target-layers", L + 1, "--predictor-steps", "7", "--epochs", "3", check=False)
    assert bad.returncode == 2 and "not both" in bad.stderr and not (tmp_path / "bad").exists()


def test_same_seed_same_bytes_other_seed_other_bytes(fx, tmp_path):
    src = fx("tiny-mistral-bf16")
    L = layers_of(src)
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        out = tmp_path / name
        lesa("expand", src, "-o", out, "--method", "lesa", "--target-layers", L + 2, "--epochs", "2", "--seed", seed, "--threads", "2", "--quiet")
        runs[name] = {k: v for k, v in tree_hash(out).items() if k != "lesa.json"}
    assert runs["a"] == runs["b"]
    weights = [k for k in runs["a"] if k.endswith(".safetensors")]
    assert any(runs["a"][k] != runs["c"][k] for k in weights)



def test_two_types_at_once_write_the_bytes_of_one_at_a_time(fx, tmp_path):
    """--threads 2 trains two weight types concurrently (one BLAS thread each); --threads 1 one after another."""
    src = fx("tiny-llama-f32")
    L = layers_of(src)
    runs = {}
    for threads in (1, 2):
        out = tmp_path / f"t{threads}"
        lesa("expand", src, "-o", out, "--method", "lesa", "--target-layers", L + 2, "--epochs", "2", "--seed", "3",
             "--threads", threads, "--quiet")
        runs[threads] = {k: v for k, v in tree_hash(out).items() if k != "lesa.json"}
    assert runs[1] == runs[2]

def test_nan_in_a_layer_stops_with_its_name(fx, tmp_path):
    import shutil
    from safetensors.torch import save_file
    src = tmp_path / "src"
    shutil.copytree(fx("tiny-llama-f32"), src)
    shards = sorted(src.glob("*.safetensors"))
    target = "model.layers.2.mlp.up_proj.weight"
    for f in shards:
        t = read(f)
        if target in t:
            t[target][3, 5] = float("nan")
            save_file(t, f, metadata={"format": "pt"})
    out = tmp_path / "out"
    p = lesa("expand", src, "-o", out, "--method", "lesa", "--target-layers", layers_of(src) + 1, "--epochs", "1", "--quiet", check=False)
    assert p.returncode == 2
    assert target in p.stderr and "NaN" in p.stderr
    assert not out.exists()
    assert not [x for x in tmp_path.iterdir() if x.name.startswith(".out")], "temporary output left behind"


def test_spilling_coefficients_to_disk_changes_nothing(fx, tmp_path):
    """--max-memory below one weight type's coefficient blocks moves them to a scratch file
    (read per mini-batch by the trainer); the output must be byte-identical. One BLAS thread:
    with more, a spilled type runs alone on every thread instead of beside another on one, and
    the thread count changes the bytes (ExpandOptions.threads)."""
    src = fx("tiny-llama-f32")
    L = layers_of(src)
    hashes = {}
    for name, extra in (("memory", []), ("spilled", ["--max-memory", "1KB"])):
        out = tmp_path / name
        lesa("expand", src, "-o", out, "--method", "lesa", "--target-layers", L + 2, "--epochs", "2", "--threads", "1", "--quiet", *extra)
        hashes[name] = {k: v for k, v in tree_hash(out).items() if k != "lesa.json"}
    assert hashes["memory"] == hashes["spilled"]
