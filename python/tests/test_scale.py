"""`lesa expand --scale TYPE=FACTOR`: the new layers' tensors of those types are exactly
factor × the unscaled expansion's (computed here in torch), every other tensor is unchanged,
transformers loads the result, identity starts stay identities, and lesa.json records it."""
from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from _cli import layers_of, lesa, manifest
from lesa_py.testing import hfcheck
from test_expand import tensors

pytestmark = pytest.mark.usefixtures("single_thread")

SCALES = {"q_proj": 0.707, "k_proj": 0.707, "down_proj": 0.5}
FLAGS = ["--scale", "q_proj=0.707,k_proj=0.707", "--scale", "down_proj=0.5"]  # both spellings at once


@pytest.mark.parametrize("fixture, method", [("tiny-llama-f32", "copy"), ("tiny-llama-bf16", "average"),
                                             ("tiny-llama-f32", "llama-pro"), ("tiny-qwen2-f32", "lesa"),
                                             ("tiny-gemma3-f32", "llama-pro")])
def test_new_layers_scaled_exactly(fx, tmp_path, moby, fixture, method):
    src = fx(fixture)
    L = layers_of(src)
    args = ["--method", method, "--target-layers", L + 2, "--epochs", "1", "--quiet"]
    lesa("expand", src, "-o", tmp_path / "plain", *args)
    lesa("expand", src, "-o", tmp_path / "scaled", *args, *FLAGS)
    plain, scaled = tensors(tmp_path / "plain"), tensors(tmp_path / "scaled")
    m = manifest(tmp_path / "scaled")
    assert m["options"]["scale"] == SCALES
    new = {l["out"] for l in m["layers"] if l["kind"] == "new"}
    hits = 0
    for name, want in plain.items():
        layer = re.search(r"\.layers\.(\d+)\.", name)
        kind = next((t for t in SCALES if name.endswith(f".{t}.weight")), None)
        if layer and int(layer.group(1)) in new and kind:
            want = (want.float() * torch.tensor(SCALES[kind], dtype=torch.float32)).to(want.dtype)
            hits += 1
        assert torch.equal(scaled[name], want), name
    assert hits == 2 * len(SCALES)
    rep = hfcheck.check(tmp_path / "scaled")
    assert rep["ok"], rep["problems"]
    if method == "llama-pro":  # the silenced branches stay silent: the function is the original's
        ids = AutoTokenizer.from_pretrained(src)(moby[5000:6000], return_tensors="pt").input_ids[:, :128]
        with torch.no_grad():
            a = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()(ids).logits
            b = AutoModelForCausalLM.from_pretrained(tmp_path / "scaled", dtype=torch.float32).eval()(ids).logits
        assert (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("fixture, flags, expect", [
    ("tiny-gemma3-f32", ["--method", "llama-pro", "--scale", "post_attention_layernorm=0.5"], "would break the identity"),
    ("tiny-llama-f32", ["--method", "copy", "--scale", "lm_head=0.5"], "layers have no lm_head"),
    ("tiny-llama-f32", ["--method", "copy", "--scale", "q_proj"], "TYPE=FACTOR"),
    ("tiny-llama-f32", ["--method", "copy", "--scale", "q_proj=nan"], "TYPE=FACTOR"),
    ("tiny-llama-f32", ["--method", "copy", "--scale", "q_proj=0.5,q_proj=1"], "given twice"),
])
def test_refused(fx, tmp_path, fixture, flags, expect):
    src = fx(fixture)
    p = lesa("expand", src, "-o", tmp_path / "out", "--target-layers", layers_of(src) + 2, "--quiet", *flags, check=False)
    assert p.returncode == 2 and expect in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "out").exists()
