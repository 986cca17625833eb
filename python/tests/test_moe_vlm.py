"""MoE (Mixtral, Qwen2/3-MoE) and image-text wrappers (Gemma 3, Mistral 3): every method
writes a checkpoint transformers loads with nothing missing or unexpected, identity methods
keep the logits, experts travel with their layer, and a wrapper's non-language tensors and
configs come through unchanged."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from lesa_py.testing import fixtures, hfcheck
from _cli import lesa, manifest, tree_hash

pytestmark = pytest.mark.usefixtures("single_thread")

MOE = [t.removeprefix("tiny-") for t in fixtures.TINY_MOE]
VLM = [t.removeprefix("tiny-") for t in fixtures.TINY_VLM]
METHODS = ["copy", "llama-pro", "average", "random", "solar", "stack", "lesa", "ot-fuse"]


def cfg(d: Path) -> dict:
    return json.loads((d / "config.json").read_text())


def text_cfg(d: Path) -> dict:
    c = cfg(d)
    return c.get("text_config", c)


def tensors(d: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(d.glob("*.safetensors")):
        with safe_open(f, framework="pt") as sf:
            for k in sf.keys():
                out[k] = sf.get_tensor(k)
    return out


def load(d: Path):
    """The checkpoint's own class (config.architectures), loaded with loading info checked."""
    import transformers
    arch = cfg(d)["architectures"][0]
    model, info = getattr(transformers, arch).from_pretrained(d, dtype=torch.float32, output_loading_info=True)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info.get(key), f"{d.name}: {key}: {sorted(map(str, info[key]))[:8]}"
    return model.eval()


def perturbed_copy(src: Path, dst: Path, which) -> Path:
    """A copy of checkpoint `src` in `dst` whose tensors named `which(name)` get seeded noise."""
    from safetensors.torch import save_file
    dst.mkdir()
    for f in src.iterdir():
        if f.suffix != ".safetensors":
            (dst / f.name).write_bytes(f.read_bytes())
    g = torch.Generator().manual_seed(7)
    for f in sorted(src.glob("*.safetensors")):
        with safe_open(f, framework="pt") as sf:
            d = {k: sf.get_tensor(k) for k in sf.keys()}
        for k in d:
            if which(k):
                d[k] = d[k] + 0.05 * torch.randn(d[k].shape, generator=g)
        save_file(d, dst / f.name, metadata={"format": "pt"})
    return dst


def target_for(method: str, L: int) -> int:
    return {"stack": 2 * L, "solar": L + 2 if L % 2 == 0 else L + 1}.get(method, L + 2)


# One LESA budget for the plain LESA runs, so that the tests checking other properties of one
# expansion share it (the `expansion` fixture runs each distinct expansion once per module).
LESA_EPOCHS = {"lesa": ["--epochs", "2"]}


# Wrappers: llama-pro is run by the identity test below; random and stack add nothing a
# wrapper could break that copy/solar do not (the suite runs on 2 cores).
VLM_METHODS = ["copy", "average", "solar", "lesa", "ot-fuse"]


@pytest.mark.parametrize("arch,method", [(a, m) for a in MOE for m in METHODS] + [(a, m) for a in VLM for m in VLM_METHODS])
def test_every_method_loads_in_transformers(fx, tmp_path, expansion, arch, method):
    src = fx(f"tiny-{arch}-f32")
    L = text_cfg(src)["num_hidden_layers"]
    before = tree_hash(src)
    if method == "ot-fuse" and arch in MOE:
        out = tmp_path / "out"
        p = lesa("expand", src, "-o", out, "--method", method, "--target-layers", L + 1, "--quiet", check=False)
        assert p.returncode == 2 and "alignment is not available" in p.stderr and "expert" in p.stderr, p.stderr
        assert not out.exists()
        return
    n = target_for(method, L)
    out = expansion(src, method, n, *LESA_EPOCHS.get(method, []))
    assert tree_hash(src) == before
    rep = hfcheck.check(out)  # loads with nothing missing/unexpected; save_pretrained gives back the files exactly
    assert rep["ok"] and rep["tensors_compared"] == len(tensors(out)), rep["problems"]
    m = manifest(out)
    a, b = cfg(src), cfg(out)
    ta, tb = a.get("text_config", a), b.get("text_config", b)
    assert tb["num_hidden_layers"] == n == len(m["layers"])
    if "layer_types" in ta:
        assert tb["layer_types"] == [ta["layer_types"][l["source"]] for l in m["layers"]]
    # Nothing else in either config changes (the wrapper's top level and vision config included).
    grown = {"num_hidden_layers", "layer_types", "max_window_layers"}
    assert {k: v for k, v in ta.items() if k not in grown} == {k: v for k, v in tb.items() if k not in grown}
    if "text_config" in a:
        assert {k: v for k, v in a.items() if k != "text_config"} == {k: v for k, v in b.items() if k != "text_config"}
    assert lesa("verify", out).returncode == 0


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("method", ["llama-pro", "lesa --zero-out"])
@pytest.mark.parametrize("arch", MOE + VLM)
def test_identity_blocks_preserve_the_function(fx, expansion, moby, arch, method):
    """Zeroed expert (and shared-expert) down projections, or zero post-norms on Gemma:
    image-free logits and greedy generation equal the source's."""
    src = fx(f"tiny-{arch}-f32")
    name, *flags = method.split()
    out = expansion(src, name, text_cfg(src)["num_hidden_layers"] + 2, *flags, *(["--epochs", "1"] if name == "lesa" else []))
    assert_same_function(src, out, moby)


def assert_same_function(src: Path, out: Path, text: str) -> None:
    """Logits within 1e-5 and the same greedy generation, image-free, on a slice of `text`."""
    from transformers import AutoTokenizer
    ids = AutoTokenizer.from_pretrained(src)(text[5000:6000], return_tensors="pt").input_ids[:, :96]
    a, b = load(src), load(out)
    assert (logits(a, ids) - logits(b, ids)).abs().max().item() <= 1e-5
    with torch.no_grad():
        ga = a.generate(input_ids=ids[:, :16], max_new_tokens=6, do_sample=False)
        gb = b.generate(input_ids=ids[:, :16], max_new_tokens=6, do_sample=False)
    assert torch.equal(ga, gb)


PREFIX = "model.layers."


@pytest.mark.parametrize("arch", MOE)
def test_experts_travel_with_their_layer(fx, expansion, arch):
    """average: a new layer's router and expert e are the mean of its two neighbours' router and
    expert e (the same index, never another expert); original layers are exact copies."""
    src = fx(f"tiny-{arch}-f32")
    out = expansion(src, "average", text_cfg(src)["num_hidden_layers"] + 2)
    s, o = tensors(src), tensors(out)
    per_layer = sorted({k[len(PREFIX):].split(".", 1)[1] for k in s if k.startswith(PREFIX)})
    assert sum(".experts.3." in k for k in per_layer) >= 3 and any(k.endswith("gate.weight") for k in per_layer)
    for layer in manifest(out)["layers"]:
        for suf in per_layer:
            got = o[f"{PREFIX}{layer['out']}.{suf}"]
            a = s[f"{PREFIX}{layer['source']}.{suf}"]
            want = a if layer["kind"] == "original" else (a + s[f"{PREFIX}{layer['source'] + 1}.{suf}"]) / 2
            assert torch.equal(got, want), (layer, suf)
    assert len(o) == len(s) + 2 * len(per_layer)


def test_lesa_predicts_each_expert_from_that_expert_alone(fx, tmp_path):
    """LESA's choice for MoE (docs/methods.md): every expert index is its own weight type. So
    changing expert 1 in every layer changes the predicted expert 1 and leaves expert 0's
    prediction (and the router's) bit-identical."""
    src = fx("tiny-mixtral-f32")
    alt = perturbed_copy(src, tmp_path / "alt", lambda k: ".experts.1.w1." in k)
    outs = []
    for i, s in enumerate((src, alt)):
        outs.append(tmp_path / f"out{i}")
        lesa("expand", s, "-o", outs[-1], "--method", "lesa", "--target-layers", 6, "--epochs", "2", "--seed", "3", "--quiet")
    new = manifest(outs[0])["new_layers"]
    a, b = tensors(outs[0]), tensors(outs[1])
    for i in new:
        p = f"{PREFIX}{i}.block_sparse_moe."
        assert torch.equal(a[p + "experts.0.w1.weight"], b[p + "experts.0.w1.weight"])
        assert torch.equal(a[p + "gate.weight"], b[p + "gate.weight"])
        assert not torch.equal(a[p + "experts.1.w1.weight"], b[p + "experts.1.w1.weight"])


# Where each wrapper's decoder layers and vision tower live on disk (hub and transformers' save).
LAYOUT = {"gemma3vlm": ("language_model.model.layers.", "vision_tower."),
          "mistral3": ("language_model.model.layers.", "vision_tower."),
          "qwen25vl": ("model.layers.", "visual.")}


@pytest.mark.parametrize("arch", VLM)
def test_wrapper_grows_only_the_language_model(fx, expansion, arch):
    """Every tensor outside the language model's decoder layers (vision tower, projector,
    embeddings, final norm, lm_head) is byte-for-byte the source's; the layers are placed
    as the manifest says."""
    src = fx(f"tiny-{arch}-f32")
    out = expansion(src, "lesa", text_cfg(src)["num_hidden_layers"] + 2, *LESA_EPOCHS["lesa"])
    s, o = tensors(src), tensors(out)
    prefix, vision = LAYOUT[arch]
    others = [k for k in s if not k.startswith(prefix)]
    assert sum(k.startswith(vision) for k in others) >= 5
    for k in others:
        assert o[k].dtype == s[k].dtype and o[k].numpy().tobytes() == s[k].numpy().tobytes(), k
    m = manifest(out)
    assert m["layer_prefix"] == prefix
    for layer in m["layers"]:
        if layer["kind"] == "original":
            for k in s:
                if k.startswith(f"{prefix}{layer['source']}."):
                    assert torch.equal(o[k.replace(f"{prefix}{layer['source']}.", f"{prefix}{layer['out']}.", 1)], s[k])
    per_layer = sum(k.startswith(prefix) for k in s) // m["source_layers"]
    assert len(o) == len(others) + per_layer * len(m["layers"])


def test_hfcheck_sees_through_the_load_time_conversion(fx, tmp_path):
    """hfcheck on MoE compares what transformers writes back (per-expert tensors) with the
    files: an expert too many, or one missing, is a failure; the untouched fixture passes."""
    from safetensors.torch import save_file
    src = fx("tiny-mixtral-f32")
    assert hfcheck.check(src)["ok"]
    for what in ("extra", "missing"):
        d = tmp_path / what
        d.mkdir()
        for f in src.iterdir():
            if f.suffix != ".safetensors":
                (d / f.name).write_bytes(f.read_bytes())
        t = tensors(src)
        if what == "extra":
            t["model.layers.0.block_sparse_moe.experts.4.w1.weight"] = t["model.layers.0.block_sparse_moe.experts.0.w1.weight"].clone()
        else:
            del t["model.layers.1.block_sparse_moe.experts.2.w2.weight"]
        for f in d.glob("*.safetensors.index.json"):
            f.unlink()
        save_file(t, d / "model.safetensors", metadata={"format": "pt"})
        rep = hfcheck.check(d)
        assert not rep["ok"] and rep["problems"], what
