"""Tiny fixtures for the CPT tests, built in the test session (no downloads).

`make_text` writes a small synthetic corpus with enough structure for the loss to
fall; `make_model_dir` writes a 4-layer Llama (hidden 32) as an HF safetensors
checkpoint with a word-level tokenizer trained on that text and a `lesa.json`
manifest marking two of its layers new, like `lesa expand` would (docs/manifest.md).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from lesa_py.checkpoint import MANIFEST_FORMAT

NEW_LAYERS = [1, 3]

_SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "a small bird", "the teacher", "our neighbour"]
_VERBS = ["sees", "likes", "follows", "finds", "watches", "helps", "calls"]
_OBJECTS = ["the ball", "a red car", "the river", "a green tree", "the market", "a quiet house", "the garden"]
_TAILS = ["today", "every morning", "in the rain", "after lunch", "near the hill", "again", "at night"]


def make_text(path: Path, n_sentences: int = 1500, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = []
    for i in range(n_sentences):
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)} ."
        lines.append(s)
        if i % 8 == 7:
            lines.append("")  # paragraph break
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def make_tokenizer(text_path: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]", "[BOS]", "[EOS]"])
    tok.train([str(text_path)], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]"
    )


def make_model_dir(
    out: Path,
    text_path: Path,
    *,
    n_layers: int = 4,
    hidden: int = 32,
    tie: bool = True,
    new_layers=NEW_LAYERS,
    manifest: bool = True,
    seed: int = 0,
) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(text_path)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tie,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out)  # safetensors (the transformers default)
    tokenizer.save_pretrained(out)
    if manifest:
        write_manifest(out, n_layers, list(new_layers))
    return out


def write_manifest(model_dir: Path, n_layers: int, new_layers: list[int]) -> dict:
    files = {p.name: _sha256(p) for p in sorted(model_dir.iterdir()) if p.is_file() and p.name != "lesa.json"}
    layers = []
    src = 0
    for i in range(n_layers):
        if i in new_layers:
            layers.append({"out": i, "kind": "new", "source": src - 1, "between": [src - 1, src], "how": "test"})
        else:
            layers.append({"out": i, "kind": "original", "source": src, "how": f"original {src}"})
            src += 1
    m = {
        "format": MANIFEST_FORMAT,
        "lesa_version": "0.1.0",
        "created": "2026-01-01T00:00:00.000Z",
        "method": "test",
        "options": {},
        "source": {"dir": "/nonexistent", "sha256": "0" * 64},
        "source_layers": src,
        "target_layers": n_layers,
        "layer_prefix": "model.layers.",
        "layers": layers,
        "new_layers": sorted(new_layers),
        "files": files,
    }
    (model_dir / "lesa.json").write_text(json.dumps(m, indent=2))
    return m
