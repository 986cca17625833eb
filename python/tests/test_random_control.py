"""`random` (and `--match-norm`, the size-matched control of the study) by value: the
distribution before matching, the norm after it (recomputed here from the neighbours), the
seeding, and what norms and biases get (1 for RMSNorm, 0 for Gemma's (1 + w) norms)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from _cli import layers_of, lesa, manifest, tree_hash


def read_all(d: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        with safe_open(f, framework="pt") as h:
            out.update({k: h.get_tensor(k) for k in h.keys()})
    return out


def expand(src: Path, out: Path, seed: int, *flags: str) -> dict:
    lesa("expand", src, "-o", out, "--method", "random", "--target-layers", layers_of(src) + 2, "--seed", seed,
         "--placement", "top", "--quiet", *flags)
    return read_all(out)


def new_tensors(out: Path, t: dict):
    """(name, tensor, j, suffix) of every tensor of the new layers; j: the layer it follows."""
    m = manifest(out)
    prefix = m["layer_prefix"]
    for layer in m["layers"]:
        if layer["kind"] != "new":
            continue
        for k, v in t.items():
            if k.startswith(f"{prefix}{layer['out']}."):
                yield k, v, layer["source"], k[len(f"{prefix}{layer['out']}."):]


@pytest.fixture(scope="module")
def llama(fx, tmp_path_factory):
    src = fx("tiny-llama-f32")
    tmp = tmp_path_factory.mktemp("random")
    runs = {name: (tmp / name, expand(src, tmp / name, seed, *flags))
            for name, seed, flags in (("plain", 3, ()), ("matched", 3, ("--match-norm",)), ("again", 3, ("--match-norm",)),
                                      ("other", 4, ("--match-norm",)))}
    return src, read_all(src), runs


def test_matrices_are_normal_with_the_initializer_std(llama):
    src, _, runs = llama
    std = json.loads((src / "config.json").read_text())["initializer_range"]
    out, t = runs["plain"]
    mats = [v.double().flatten() for _, v, _, s in new_tensors(out, t) if v.dim() == 2]
    assert len(mats) == 2 * 7
    for x in mats:
        n = x.numel()
        assert abs(x.mean().item()) < 5 * std / math.sqrt(n)
        assert abs(x.std().item() - std) < 5 * std / math.sqrt(2 * n)
        kurt = ((x - x.mean()) ** 4).mean().item() / x.var().item() ** 2
        assert abs(kurt - 3) < 5 * math.sqrt(24 / n), "not Gaussian"
    # every tensor its own stream: no two matrices share values
    a, b = mats[0], mats[1]
    k = min(a.numel(), b.numel())
    assert abs(torch.corrcoef(torch.stack([a[:k], b[:k]]))[0, 1].item()) < 5 / math.sqrt(k)


def test_match_norm_rescales_to_the_neighbours_mean_frobenius_norm(llama):
    src, s, runs = llama
    L = layers_of(src)
    (out, m), (_, p) = runs["matched"], runs["plain"]
    prefix = manifest(out)["layer_prefix"]
    n = 0
    for name, v, j, suf in new_tensors(out, m):
        if v.dim() != 2:
            continue
        neighbours = [i for i in (j, j + 1) if i < L]
        want = sum(s[f"{prefix}{i}.{suf}"].double().norm().item() for i in neighbours) / len(neighbours)
        assert v.double().norm().item() == pytest.approx(want, rel=1e-5), name
        # the same draw, only scaled: matching changes the norm and nothing else
        q = p[name].double().flatten()
        cos = (v.double().flatten() @ q).item() / (v.double().norm().item() * q.norm().item())
        assert cos > 1 - 1e-6, name
        n += 1
    assert n == 2 * 7


def test_norms_identity_biases_zero(fx, llama, tmp_path):
    src, _, runs = llama
    out, t = runs["matched"]
    norms = [(k, v) for k, v, _, s in new_tensors(out, t) if "norm" in s]
    assert norms and all(torch.equal(v, torch.ones_like(v)) for _, v in norms)
    q = tmp_path / "qwen2"
    qt = expand(fx("tiny-qwen2-f32"), q, 1, "--match-norm")
    biases = [v for k, v, _, s in new_tensors(q, qt) if s.endswith(".bias")]
    assert len(biases) == 2 * 3 and all(torch.count_nonzero(b) == 0 for b in biases)


def test_gemma_norms_get_zero_the_identity_of_one_plus_w(fx, tmp_path):
    out = tmp_path / "gemma"
    t = expand(fx("tiny-gemma3-f32"), out, 1, "--match-norm")
    norms = [(k, v) for k, v, _, s in new_tensors(out, t) if "norm" in s]
    assert len(norms) >= 2 * 4  # input, post-attention, pre/post-feedforward (+ q/k norms)
    for k, v in norms:
        assert torch.count_nonzero(v) == 0, k


def test_same_seed_same_bytes_other_seed_other_bytes(llama):
    _, _, runs = llama
    h = {k: {f: x for f, x in tree_hash(runs[k][0]).items() if f != "lesa.json"} for k in ("matched", "again", "other")}
    assert h["matched"] == h["again"]
    a, c = runs["matched"][1], runs["other"][1]
    new = [k for k, v, _, s in new_tensors(runs["matched"][0], a) if v.dim() == 2]
    assert new and all(not torch.equal(a[k], c[k]) for k in new)
    # originals are the same whatever the seed
    assert all(torch.equal(a[k], c[k]) for k in a if k not in {n for n, *_ in new_tensors(runs["matched"][0], a)})
