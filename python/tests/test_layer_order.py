"""SOLAR and stack layer order against recipes written here from L and the target (not read
from the tool's manifest): output layer i holds exactly source layer seq[i], tensor by tensor,
and the per-layer config lists (Gemma 3's layer_types) follow the same order."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from _cli import layers_of, lesa


def solar_order(L: int, target: int) -> list[int]:
    """SOLAR 10.7B (arXiv 2312.15166): two copies of the stack, the last m layers cut from the
    first and the first m from the second, m = (2L - target) / 2 (L=32, target 48: m = 8)."""
    m = (2 * L - target) // 2
    return list(range(0, L - m)) + list(range(m, L))


def stack_order(L: int, target: int) -> list[int]:
    return list(range(L)) * (target // L)


def read_all(d: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        with safe_open(f, framework="pt") as h:
            out.update({k: h.get_tensor(k) for k in h.keys()})
    return out


def test_recipes_match_the_papers_numbers():
    assert len(solar_order(32, 48)) == 48 and solar_order(32, 48)[23:25] == [23, 8]
    assert stack_order(3, 6) == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("method,fixture,target", [  # tiny-llama: 8 layers, tiny-gemma3: 7, tiny-qwen2: 6
    ("solar", "tiny-llama-f32", 12), ("solar", "tiny-llama-f32", 14), ("solar", "tiny-gemma3-f32", 10),
    ("stack", "tiny-llama-f32", 16), ("stack", "tiny-gemma3-f32", 21), ("stack", "tiny-qwen2-bf16", 12)])
def test_output_layers_are_the_recipes_source_layers(fx, tmp_path, method, fixture, target):
    src = fx(fixture)
    L = layers_of(src)
    seq = (solar_order if method == "solar" else stack_order)(L, target)
    assert len(seq) == target
    out = tmp_path / "out"
    lesa("expand", src, "-o", out, "--method", method, "--target-layers", target, "--quiet")
    s, o = read_all(src), read_all(out)
    prefix = "model.layers."
    per_layer = sorted({k[len(prefix):].split(".", 1)[1] for k in s if k.startswith(prefix)})
    assert len(o) == len(s) + (target - L) * len(per_layer)
    for i, j in enumerate(seq):
        for suf in per_layer:
            assert torch.equal(o[f"{prefix}{i}.{suf}"], s[f"{prefix}{j}.{suf}"]), f"output layer {i} {suf} is not source {j}'s"
    for k, v in s.items():
        if not k.startswith(prefix):
            assert torch.equal(o[k], v), k
    cs, co = (json.loads((d / "config.json").read_text()) for d in (src, out))
    assert co["num_hidden_layers"] == target
    if "layer_types" in cs:
        assert co["layer_types"] == [cs["layer_types"][j] for j in seq]
