"""rand-svd: every new linear weight is U·diag(S)·G, G the seeded normal stream, at the neighbours' mean norm.

Recomputed here from the project's decomposition (`lesa decompose`, checked against torch's
SVD in test_lesa.py) and a Python port of the seeding (FNV-1a tensor seed, mulberry32,
Box-Muller): the written bytes must match, lie in span(U), carry the promised norm, repeat
for a seed and change with another.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import safe_open

from _cli import layers_of, lesa, manifest, tree_hash

M32 = 0xFFFFFFFF


def imul(a: int, b: int) -> int:
    return (a * b) & M32


def tensor_seed(seed: int, name: str) -> int:
    h = (0x811C9DC5 ^ seed) & M32
    for ch in name:
        h = imul(h ^ ord(ch), 0x01000193)
    return h


def gaussian(n: int, seed: int) -> torch.Tensor:
    s = seed & M32
    def nxt() -> float:
        nonlocal s
        s = (s + 0x6D2B79F5) & M32
        t = imul(s ^ (s >> 15), s | 1)
        t ^= (t + imul(t ^ (t >> 7), t | 61)) & M32
        return (((t ^ (t >> 14)) & M32) + 0.5) / 4294967296
    out = []
    while len(out) < n:
        r = math.sqrt(-2 * math.log(nxt()))
        th = 2 * math.pi * nxt()
        out += [r * math.cos(th), r * math.sin(th)]
    return torch.tensor(out[:n], dtype=torch.float64)


def read_all(d: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        with safe_open(f, framework="pt") as h:
            out.update({k: h.get_tensor(k) for k in h.keys()})
    return out


def test_rand_svd_is_seeded_random_coefficients_in_the_basis_at_the_neighbours_norm(fx, tmp_path):
    src = fx("tiny-llama-f32")
    L = layers_of(src)
    types = {"q_proj": "self_attn", "k_proj": "self_attn", "down_proj": "mlp"}
    lesa("decompose", src, "-o", tmp_path / "f.safetensors", "--types", ",".join(types), "--quiet")
    with safe_open(tmp_path / "f.safetensors", framework="pt") as h:
        factors = {k: h.get_tensor(k) for k in h.keys()}
    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        lesa("expand", src, "-o", tmp_path / name, "--method", "rand-svd", "--target-layers", L + 2, "--seed", seed, "--quiet")
        runs[name] = {k: v for k, v in tree_hash(tmp_path / name).items() if k.endswith(".safetensors")}
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]

    m, s, o = manifest(tmp_path / "a"), read_all(src), read_all(tmp_path / "a")
    assert m["method"] == "rand-svd" and m["options"]["fill"] == "layer0"
    new_layers = [layer for layer in m["layers"] if layer["kind"] == "new"]
    assert len(new_layers) == 2
    for layer in new_layers:
        new, (j, k) = layer["out"], layer["between"]
        for type_, module in types.items():
            U, S = factors[f"{type_}.U"], factors[f"{type_}.S"]
            got = o[f"model.layers.{new}.{module}.{type_}.weight"].double()
            left, right = (s[f"model.layers.{i}.{module}.{type_}.weight"].double() for i in (j, k))
            norm = (left.norm() + right.norm()) / 2
            assert abs(got.norm() / norm - 1) < 1e-6, (type_, new)
            inside = U @ (U.T @ got)
            assert ((got - inside).norm() / got.norm()).item() < 1e-5  # in span(U)
            G = gaussian(S.numel() * got.shape[1], tensor_seed(5, f"model.layers.{j}.{module}.{type_}.weight#new-after-{j}"))
            want = (U * S) @ G.view(S.numel(), -1)
            want *= norm / want.norm()
            assert ((got - want).norm() / want.norm()).item() < 1e-5, (type_, new)
        # norms come from layer 0 (--fill layer0, the default)
        assert torch.equal(o[f"model.layers.{new}.input_layernorm.weight"], s["model.layers.0.input_layernorm.weight"])
