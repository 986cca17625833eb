"""MoE checkpoints whose layers mix dense and sparse MLPs (Qwen3-MoE `mlp_only_layers`,
Qwen2-MoE `decoder_sparse_step`): every output layer has its source layer's kind as
transformers builds it from the rewritten config, every method loads with nothing missing or
unexpected, identity methods keep the logits, and methods that mix two neighbours of
different kinds refuse."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lesa_py.testing import hfcheck
from _cli import lesa, manifest, tree_hash
from test_moe_vlm import assert_same_function, cfg, load, perturbed_copy, tensors

pytestmark = pytest.mark.usefixtures("single_thread")

# SSDDDSSS and DSDSDS (fixtures.TINY_MOE_MIXED).
MIXED = "tiny-qwen3moemixed-f32"
STEP = "tiny-qwen2moestep-f32"
PREFIX = "model.layers."


def kinds_by_transformers(d: Path) -> list[str]:
    """What transformers builds in each layer from the config alone (its decoder layer's rule)."""
    c = cfg(d)
    return ["sparse" if i not in (c.get("mlp_only_layers") or []) and (i + 1) % c.get("decoder_sparse_step", 1) == 0
            else "dense" for i in range(c["num_hidden_layers"])]


def built_kinds(model) -> list[str]:
    return ["sparse" if hasattr(layer.mlp, "experts") else "dense" for layer in model.model.layers]


# (fixture, method, extra flags): interpolating methods between neighbours of one kind
# (after 2: dense 2-3, after 5: sparse 5-6); copying methods where they place by default.
# llama-pro loads (checked) in the identity test below; stack on the mixed one adds nothing
# the stepped one does not (the suite runs on 2 cores).
CASES = [
    (MIXED, "copy", ["--after", "1,4"]), (MIXED, "random", ["--after", "4,7", "--match-norm"]),
    (MIXED, "average", ["--after", "2,5"]), (MIXED, "lesa", ["--after", "2,5", "--epochs", "2"]),
    (MIXED, "rand-svd", ["--after", "2,5"]), (MIXED, "solar", []),
    (STEP, "copy", []), (STEP, "solar", []), (STEP, "stack", []),
]


def target(method: str, L: int) -> int:
    return {"stack": 2 * L, "solar": L + 2}.get(method, L + 2)


@pytest.mark.parametrize("name,method,flags", CASES, ids=[f"{n.split('-')[1]}-{m}" for n, m, _ in CASES])
def test_every_method_keeps_each_layers_kind(fx, tmp_path, name, method, flags):
    src = fx(name)
    L = cfg(src)["num_hidden_layers"]
    src_kinds = kinds_by_transformers(src)
    out = tmp_path / "out"
    before = tree_hash(src)
    n = target(method, L)
    lesa("expand", src, "-o", out, "--method", method, "--target-layers", n, "--quiet", *flags)
    assert tree_hash(src) == before
    rep = hfcheck.check(out)  # nothing missing/unexpected; transformers writes back the same files
    assert rep["ok"] and rep["tensors_compared"] == len(tensors(out)), rep["problems"]
    layers = manifest(out)["layers"]
    want = [src_kinds[l["source"]] for l in layers]
    assert kinds_by_transformers(out) == want
    assert built_kinds(load(out)) == want
    a, b = cfg(src), cfg(out)
    if "layer_types" in a:
        assert b["layer_types"] == [a["layer_types"][l["source"]] for l in layers]
    grown = {"num_hidden_layers", "layer_types", "max_window_layers", "mlp_only_layers", "decoder_sparse_step"}
    assert {k: v for k, v in a.items() if k not in grown} == {k: v for k, v in b.items() if k not in grown}
    # Copies are exact, whatever their kind: original layers everywhere, new ones for copy/stack/solar.
    s, o = tensors(src), tensors(out)
    for l in layers:
        if l["kind"] == "original" or method in ("copy", "stack", "solar"):
            mine = {k[len(f"{PREFIX}{l['source']}."):]: v for k, v in s.items() if k.startswith(f"{PREFIX}{l['source']}.")}
            got = {k[len(f"{PREFIX}{l['out']}."):]: v for k, v in o.items() if k.startswith(f"{PREFIX}{l['out']}.")}
            assert mine.keys() == got.keys() and all(torch.equal(mine[k], got[k]) for k in mine), l


def test_step_pattern_kept_when_it_still_holds_else_listed(fx, tmp_path):
    """stack repeats DSDSDS: decoder_sparse_step 2 still yields it (kept, list empty); a copy of
    the last layer appended breaks the step, so every dense layer is listed with step 1."""
    src = fx(STEP)
    lesa("expand", src, "-o", tmp_path / "stack", "--method", "stack", "--target-layers", 12, "--quiet")
    c = cfg(tmp_path / "stack")
    assert (c["decoder_sparse_step"], c["mlp_only_layers"]) == (2, [])
    lesa("expand", src, "-o", tmp_path / "copy", "--method", "copy", "--target-layers", 7, "--after", 5, "--quiet")
    c = cfg(tmp_path / "copy")
    assert (c["decoder_sparse_step"], c["mlp_only_layers"]) == (1, [0, 2, 4])


@pytest.mark.parametrize("method", ["average", "lesa", "rand-svd"])
def test_mixing_neighbours_of_different_kinds_is_refused(fx, tmp_path, method):
    src = fx(MIXED)
    out = tmp_path / "out"
    p = lesa("expand", src, "-o", out, "--method", method, "--target-layers", 9, "--after", 1, "--quiet", check=False)
    assert p.returncode == 2 and "layer 1 has a sparse MLP and layer 2 a dense one" in p.stderr, p.stderr
    assert "--after" in p.stderr and "0,2,3,5,6" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("name,method", [(MIXED, "llama-pro --after 1,3"), (MIXED, "lesa --zero-out --after 3,6"), (STEP, "llama-pro --after 2,3")])
def test_identity_blocks_of_either_kind_preserve_the_function(fx, tmp_path, moby, name, method):
    """Identity blocks copied from a dense and a sparse layer (zeroed down_proj, or every
    expert's and the shared expert's): logits within 1e-5 and the same greedy generation."""
    src = fx(name)
    out = tmp_path / "out"
    m, *flags = method.split()
    lesa("expand", src, "-o", out, "--method", m, "--target-layers", cfg(src)["num_hidden_layers"] + 2,
         "--epochs", "1", "--quiet", *flags)
    kinds = kinds_by_transformers(src)
    assert {kinds[l["source"]] for l in manifest(out)["layers"] if l["kind"] == "new"} == {"dense", "sparse"}
    assert_same_function(src, out, moby)


def test_lesa_learns_each_kind_from_its_own_layers(fx, tmp_path):
    """LESA decomposes a dense-only type over the dense layers and an expert over the sparse
    ones: changing the dense layers' gate_proj changes the predicted dense gate_proj and
    leaves every predicted expert of the sparse new layer bit-identical."""
    src = fx(MIXED)
    alt = perturbed_copy(src, tmp_path / "alt", lambda k: k.endswith("mlp.gate_proj.weight"))
    outs = []
    for i, s in enumerate((src, alt)):
        outs.append(tmp_path / f"out{i}")
        lesa("expand", s, "-o", outs[-1], "--method", "lesa", "--target-layers", 10, "--after", "2,5",
             "--epochs", "2", "--seed", "3", "--quiet")
    a, b = tensors(outs[0]), tensors(outs[1])
    dense_new, sparse_new = manifest(outs[0])["new_layers"]  # after 2 (dense), after 5 (sparse)
    assert not torch.equal(a[f"{PREFIX}{dense_new}.mlp.gate_proj.weight"], b[f"{PREFIX}{dense_new}.mlp.gate_proj.weight"])
    sparse = [k for k in a if k.startswith(f"{PREFIX}{sparse_new}.mlp.")]
    assert len(sparse) == 1 + 4 * 3 and all(torch.equal(a[k], b[k]) for k in sparse)
