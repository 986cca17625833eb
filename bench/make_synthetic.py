"""Write a synthetic Llama checkpoint with real shapes and random bf16 weights, shard by shard.

    python bench/make_synthetic.py llama-3.2-1b OUT_DIR
    python bench/make_synthetic.py llama-3-8b OUT_DIR
    python bench/make_synthetic.py llama-3-70b OUT_DIR --sparse

Weights are N(0, 0.02) (norms 1): the numbers are meaningless, the shapes and byte counts are
real, so the run measures time and memory of every phase at that scale. --sparse writes the
headers and leaves the data as holes (all zeros, no disk used): enough for `lesa inspect` and
`lesa expand --dry-run` (shapes and resource estimates) at sizes this disk cannot hold.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path


SHAPES = {
    # For checking bench scripts end to end in seconds (e.g. DEVICE=cpu-torch bench/lesa_shapes_gpu.sh llama-tiny 1).
    "llama-tiny": dict(hidden_size=64, intermediate_size=160, num_hidden_layers=6, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, vocab_size=256, tie_word_embeddings=False),
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True),
    "llama-3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False),
    "llama-3-70b": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                        num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False),
}


def save_sparse(shapes: dict[str, list[int]], path: Path) -> int:
    """A BF16 safetensors file whose data region is a hole: the header is real, the values are zeros."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes.items():
        n = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        f.truncate(8 + len(text) + offset)
    return offset


def layer_shapes(c: dict) -> dict[str, list[int]]:
    h, i, kv = c["hidden_size"], c["intermediate_size"], c["num_key_value_heads"] * c["head_dim"]
    q = c["num_attention_heads"] * c["head_dim"]
    return {
        "input_layernorm.weight": [h], "post_attention_layernorm.weight": [h],
        "self_attn.q_proj.weight": [q, h], "self_attn.k_proj.weight": [kv, h], "self_attn.v_proj.weight": [kv, h],
        "self_attn.o_proj.weight": [h, q], "mlp.gate_proj.weight": [i, h], "mlp.up_proj.weight": [i, h],
        "mlp.down_proj.weight": [h, i],
    }


def main(name: str, out: Path, sparse: bool = False) -> None:
    c = SHAPES[name]
    out.mkdir(parents=True, exist_ok=True)
    if sparse:
        return main_sparse(c, out)
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)

    def rnd(shape):
        if len(shape) == 1:
            return torch.ones(shape, dtype=torch.bfloat16)
        return (torch.randn(shape, generator=g) * 0.02).to(torch.bfloat16)

    # Shapes first, values one shard at a time (in the same generator order): memory is one shard, not the model.
    shards: list[dict[str, list[int]]] = [{"model.embed_tokens.weight": [c["vocab_size"], c["hidden_size"]]}]
    for layer in range(c["num_hidden_layers"]):
        shards.append({f"model.layers.{layer}.{k}": s for k, s in layer_shapes(c).items()})
    last = {"model.norm.weight": [c["hidden_size"]]}
    if not c["tie_word_embeddings"]:
        last["lm_head.weight"] = [c["vocab_size"], c["hidden_size"]]
    shards.append(last)
    n = len(shards)
    weight_map, total = {}, 0
    for k, shapes in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        tensors = {t_name: rnd(s) for t_name, s in shapes.items()}
        save_file(tensors, out / fname, metadata={"format": "pt"})
        for t_name, t in tensors.items():
            weight_map[t_name] = fname
            total += t.numel() * 2
        print(f"wrote {fname}", file=sys.stderr)
        del tensors
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    write_config(c, out)


def main_sparse(c: dict, out: Path) -> None:
    h = c["hidden_size"]
    shards = [{"model.embed_tokens.weight": [c["vocab_size"], h]}]
    shards += [{f"model.layers.{i}.{k}": s for k, s in layer_shapes(c).items()} for i in range(c["num_hidden_layers"])]
    shards.append({"model.norm.weight": [h], **({} if c["tie_word_embeddings"] else {"lm_head.weight": [c["vocab_size"], h]})})
    weight_map, total = {}, 0
    for k, shapes in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        total += save_sparse(shapes, out / fname)
        weight_map.update({t: fname for t in shapes})
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    write_config(c, out)


def write_config(c: dict, out: Path) -> None:
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "rms_norm_eps": 1e-5,
           "initializer_range": 0.02, "max_position_embeddings": 8192, "torch_dtype": "bfloat16", **c}
    (out / "config.json").write_text(json.dumps(cfg, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sparse="--sparse" in sys.argv[3:])
