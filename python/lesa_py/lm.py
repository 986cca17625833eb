"""The language model inside a checkpoint, whether a causal LM or an image-text wrapper
(Gemma3ForConditionalGeneration, Mistral3ForConditionalGeneration, Qwen2.5-VL...): how
it loads, where its decoder layers are, how deep it is. One owner for what evaluation,
training and `lesa compare` need to treat both alike."""
from __future__ import annotations

import json
from pathlib import Path


def load_lm(model_dir: str | Path, **kw):
    """`from_pretrained` with the checkpoint's own class when config.json names a wrapper
    transformers has (AutoModelForCausalLM has no mapping for some, e.g. Qwen2.5-VL), else
    AutoModelForCausalLM. Every tensor of a wrapper loads, the vision tower included; the
    model then runs on text alone (input_ids)."""
    import transformers

    arch = (json.loads((Path(model_dir) / "config.json").read_text()).get("architectures") or [None])[0]
    cls = getattr(transformers, arch, None) if isinstance(arch, str) and arch.endswith("ForConditionalGeneration") else None
    return (cls or transformers.AutoModelForCausalLM).from_pretrained(str(model_dir), use_safetensors=True, **kw)


def decoder_layers(model):
    """The ModuleList of decoder layers (the language model's in a wrapper)."""
    return model.get_decoder().layers


def depth(model) -> int:
    return model.config.get_text_config().num_hidden_layers
