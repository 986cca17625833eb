"""LESA end to end, recomputed: every tensor `lesa expand --method lesa` writes for a new layer
is checked against an independent PyTorch computation.

The predicted projections must equal U·diag(S)·G([V_j, V_{j+1}]), with U, S, V from
`lesa decompose` and G the trained predictor (exported through LESA_EXPORT_PREDICTORS,
src/methods/lesa/export.ts) loaded into python/lesa_py/oracle.py's nn.Module and run in f64.
Every other tensor of a new layer (norms, biases) must be exactly what --fill promises:
the neighbours' element-wise mean, or layer 0's. The original layers must be untouched.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lesa_py.testing import oracle
from _cli import layers_of, lesa, manifest

# Fidelity: native f32 GEMMs (predictRows, reconstruct) against torch in f64 on the same f32
# inputs. Measured ~1e-7 relative on these fixtures; 1e-5 leaves room for BLAS kernel order.
REL_TOL = 1e-5
# The predictor is trained briefly: this test is about what is written, not how well it predicts.
EPOCHS = "1"

CASES = [("tiny-llama-f32", 2, "mean"), ("tiny-llama-f32", 2, "layer0"),
         ("tiny-qwen2-f32", 2, "mean"), ("tiny-qwen2-f32", 2, "layer0"),
         ("smollm2-135m", 1, "layer0")]


def read_all(d: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint directory or of one .safetensors file."""
    out = {}
    for f in sorted(Path(d).glob("*.safetensors")) if Path(d).is_dir() else [Path(d)]:
        with safe_open(f, framework="pt") as h:
            out.update({k: h.get_tensor(k) for k in h.keys()})
    return out


def predictor(params: dict[str, torch.Tensor], type_: str) -> torch.nn.Module:
    w1 = params[f"{type_}.fc1.weight"]
    g = oracle.Predictor(w1.shape[1] // 2, w1.shape[0]).double()
    g.load_state_dict({k[len(type_) + 1:]: v.double() for k, v in params.items() if k.startswith(type_ + ".")})
    return g.eval()


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{c[2]}")
def expanded(request, fx, tmp_path_factory):
    name, extra, fill = request.param
    src = fx(name)
    tmp = tmp_path_factory.mktemp("recompute")
    factors, preds, out = tmp / "factors.safetensors", tmp / "predictors.safetensors", tmp / "out"
    lesa("decompose", src, "-o", factors, "--quiet")
    os.environ["LESA_EXPORT_PREDICTORS"] = str(preds)
    try:
        lesa("expand", src, "-o", out, "--method", "lesa", "--target-layers", layers_of(src) + extra,
             "--epochs", EPOCHS, "--fill", fill, "--seed", "5", "--quiet")
    finally:
        del os.environ["LESA_EXPORT_PREDICTORS"]
    return dict(src=read_all(src), out=read_all(out), factors=read_all(factors), preds=read_all(preds),
                manifest=manifest(out), fill=fill)


def new_layers(m: dict):
    for layer in m["layers"]:
        if layer["kind"] == "new":
            yield layer["out"], layer["between"][0]


def test_predicted_tensors_equal_the_recomputation(expanded):
    e = expanded
    prefix = e["manifest"]["layer_prefix"]
    types = sorted({k.split(".")[0] for k in e["factors"]})
    assert types == sorted({k.split(".")[0] for k in e["preds"]}), "a predictor per decomposed type"
    checked = 0
    for out_i, j in new_layers(e["manifest"]):
        for t in types:
            U, S, V = e["factors"][f"{t}.U"], e["factors"][f"{t}.S"], e["factors"][f"{t}.V"].double()
            with torch.no_grad():
                want = (U * S) @ predictor(e["preds"], t)(torch.cat([V[j], V[j + 1]], dim=1))
            got = e["out"][f"{prefix}{out_i}.{oracle.TYPE_SUFFIX[t]}"].double()
            rel = ((got - want).norm() / want.norm()).item()
            assert rel <= REL_TOL, f"layer {out_i} (gap {j}|{j + 1}) {t}: relative error {rel:.2e}"
            checked += 1
    assert checked == len(types) * len(e["manifest"]["new_layers"]) and checked > 0


def test_other_tensors_of_new_layers_are_what_fill_promises(expanded):
    e = expanded
    prefix = e["manifest"]["layer_prefix"]
    linear = {oracle.TYPE_SUFFIX[t] for t in {k.split(".")[0] for k in e["factors"]}}
    suffixes = sorted({k[len(prefix):].split(".", 1)[1] for k in e["src"] if k.startswith(prefix)})
    rest = [s for s in suffixes if s not in linear]
    assert any("norm" in s for s in rest)
    for out_i, j in new_layers(e["manifest"]):
        for s in rest:
            got = e["out"][f"{prefix}{out_i}.{s}"]
            a, b = e["src"][f"{prefix}{j}.{s}"], e["src"][f"{prefix}{j + 1}.{s}"]
            want = e["src"][f"{prefix}0.{s}"] if e["fill"] == "layer0" else (a + b) / 2
            assert got.dtype == want.dtype and torch.equal(got, want), f"layer {out_i} {s} (--fill {e['fill']})"


def test_original_layers_and_globals_are_untouched(expanded):
    e = expanded
    prefix = e["manifest"]["layer_prefix"]
    for layer in e["manifest"]["layers"]:
        if layer["kind"] != "original":
            continue
        for k, v in e["src"].items():
            if k.startswith(f"{prefix}{layer['source']}."):
                assert torch.equal(e["out"][f"{prefix}{layer['out']}." + k.split(".", 3)[3]], v), k
    for k, v in e["src"].items():
        if not k.startswith(prefix):
            assert torch.equal(e["out"][k], v), k
