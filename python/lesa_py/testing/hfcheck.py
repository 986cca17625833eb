"""Independent check that a checkpoint directory loads cleanly in HF transformers.

    python -m lesa_py.testing.hfcheck DIR [--json]

Checks: config loads and validates; safetensors index (if any) matches the shard files;
from_pretrained(output_loading_info=True) reports no missing / unexpected / mismatched
keys or errors; every parameter and persistent buffer equals the tensor stored in the
files (or is tied to one that does), so nothing was newly initialised — for models whose
on-disk names transformers converts on load (MoE experts fused into 3-D tensors, image-text
wrappers' prefixes), saving the loaded model again must give back exactly the stored
tensors; greedy generate of a few tokens runs and gives finite logits.  Exit 0 when all pass, 1 otherwise, 2 on
a user error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _file_tensors(d: Path, problems: list[str]) -> dict[str, str]:
    """name -> shard file, checking the index against the shards' headers."""
    from safetensors import safe_open

    index = d / "model.safetensors.index.json"
    files = sorted(p.name for p in d.glob("*.safetensors"))
    if not files:
        problems.append("no *.safetensors files")
        return {}
    where: dict[str, str] = {}
    for f in files:
        with safe_open(d / f, framework="pt") as sf:
            for k in sf.keys():
                if k in where:
                    problems.append(f"tensor {k} stored twice ({where[k]}, {f})")
                where[k] = f
    if index.is_file():
        wm = json.loads(index.read_text()).get("weight_map", {})
        for k, f in wm.items():
            if where.get(k) != f:
                problems.append(f"index maps {k} -> {f}, but it is in {where.get(k, 'no file')}")
        for k in where.keys() - wm.keys():
            problems.append(f"tensor {k} in {where[k]} is not in the index")
        for f in set(wm.values()) - set(files):
            problems.append(f"index names missing file {f}")
    elif len(files) > 1:
        problems.append(f"{len(files)} safetensors files but no model.safetensors.index.json")
    return where


def check(model_dir: str | Path, new_tokens: int = 4) -> dict:
    import torch
    import transformers
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    d = Path(model_dir)
    problems: list[str] = []
    rep: dict = {"dir": str(d), "ok": False, "problems": problems}
    try:
        config = AutoConfig.from_pretrained(d)
        config.validate()
        rep.update(model_type=config.model_type, architectures=config.architectures,
                   num_hidden_layers=getattr(config.get_text_config(), "num_hidden_layers", None))
    except Exception as e:  # noqa: BLE001 - any failure is a finding
        problems.append(f"config: {type(e).__name__}: {e}")
        return rep
    if (d / "generation_config.json").is_file():
        try:
            GenerationConfig.from_pretrained(d).validate()
        except Exception as e:  # noqa: BLE001
            problems.append(f"generation_config: {type(e).__name__}: {e}")
    where = _file_tensors(d, problems)
    archs = getattr(config, "architectures", None) or []
    # The checkpoint's own class (an image-text wrapper has no AutoModelForCausalLM entry).
    model_cls = getattr(transformers, archs[0], None) if archs else None
    model_cls = model_cls if model_cls is not None and hasattr(model_cls, "from_pretrained") else AutoModelForCausalLM
    try:  # mismatched shapes would raise without detail: load anyway, they are reported below
        model, info = model_cls.from_pretrained(
            d, dtype="auto", use_safetensors=True, output_loading_info=True, ignore_mismatched_sizes=True)
    except Exception as e:  # noqa: BLE001
        problems.append(f"from_pretrained: {type(e).__name__}: {str(e).strip()[:2000]}")
        return rep
    model.eval()
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs", "conversion_errors"):
        val = info.get(key) or []
        rep[key] = sorted(map(str, val))
        if val:
            problems.append(f"{key}: {rep[key][:10]}")

    sd = model.state_dict()
    if where.keys() - sd.keys():  # names converted on load: compare what saving writes back
        compared = _roundtrip(model, d, where, problems)
        rep.update(tensors_compared=compared, tied={}, dtype=str(next(model.parameters()).dtype))
        _generate(model, d, config, rep, problems, new_tokens)
        rep["ok"] = not problems
        return rep
    # Every parameter / persistent buffer must equal the stored tensor (or be tied to one).
    by_ptr = {t.data_ptr(): k for k, t in sd.items() if k in where}
    tied, compared, handles = {}, 0, {}
    try:
        for k, t in sd.items():
            if k not in where:
                src = by_ptr.get(t.data_ptr())
                if src is None:
                    problems.append(f"{k}: not in the checkpoint files (newly initialised)")
                else:
                    tied[k] = src
                continue
            f = where[k]
            if f not in handles:
                handles[f] = safe_open(d / f, framework="pt")
            stored = handles[f].get_tensor(k)
            if tuple(stored.shape) != tuple(t.shape):
                problems.append(f"{k}: shape {tuple(t.shape)} in model, {tuple(stored.shape)} stored")
            elif not torch.equal(stored.to(t.dtype), t.detach().cpu()):
                problems.append(f"{k}: loaded values differ from the stored tensor")
            compared += 1
    finally:
        handles.clear()
    for k in where.keys() - sd.keys():
        problems.append(f"{k}: stored but not used by the model")
    rep.update(tensors_compared=compared, tied=tied, dtype=str(next(model.parameters()).dtype))
    _generate(model, d, config, rep, problems, new_tokens)
    rep["ok"] = not problems
    return rep


def _roundtrip(model, d: Path, where: dict[str, str], problems: list[str]) -> int:
    """Save the loaded model (transformers reverts its load-time conversions) and compare
    every written tensor with the stored one: none dropped, none added, none changed."""
    import tempfile

    import torch
    from safetensors import safe_open

    with tempfile.TemporaryDirectory(prefix="hfcheck-") as tmp:
        model.save_pretrained(tmp)
        again = _file_tensors(Path(tmp), [])
        for k in sorted(where.keys() - again.keys())[:10]:
            problems.append(f"{k}: stored but not used by the model (not written back by save_pretrained)")
        for k in sorted(again.keys() - where.keys())[:10]:
            problems.append(f"{k}: not in the checkpoint files (newly initialised)")
        compared = 0
        for k in sorted(where.keys() & again.keys()):
            with safe_open(d / where[k], framework="pt") as a, safe_open(Path(tmp) / again[k], framework="pt") as b:
                x, y = a.get_tensor(k), b.get_tensor(k)
            if x.shape != y.shape or not torch.equal(x.to(y.dtype), y):
                problems.append(f"{k}: loaded values differ from the stored tensor")
            compared += 1
    return compared


def _generate(model, d: Path, config, rep: dict, problems: list[str], new_tokens: int) -> None:
    """Greedy generation of a few tokens."""
    import torch
    from transformers import AutoTokenizer

    try:
        try:
            tok = AutoTokenizer.from_pretrained(d)
            ids = tok("The whale is", return_tensors="pt").input_ids
        except Exception:  # noqa: BLE001 - a checkpoint without tokenizer still gets a forward
            tok, ids = None, torch.tensor([[config.bos_token_id or 0, 1, 2]])
        with torch.no_grad():
            logits = model(ids).logits
            out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        if not torch.isfinite(logits).all():
            problems.append("forward produced non-finite logits")
        if out.shape[1] != ids.shape[1] + new_tokens:
            problems.append(f"generate returned {out.shape[1] - ids.shape[1]} new tokens, wanted {new_tokens}")
        rep["generated"] = tok.decode(out[0]) if tok else out[0].tolist()
    except Exception as e:  # noqa: BLE001
        problems.append(f"generate: {type(e).__name__}: {e}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesa_py.testing.hfcheck", description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not (Path(args.dir) / "config.json").is_file():
        print(f"lesa_py.testing.hfcheck: error: {args.dir}: not a checkpoint directory (no config.json)", file=sys.stderr)
        return 2
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    rep = check(args.dir)
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print(f"{'OK' if rep['ok'] else 'FAIL'} {rep['dir']} ({rep.get('model_type')}, "
              f"{rep.get('num_hidden_layers')} layers, {rep.get('tensors_compared', 0)} tensors compared, "
              f"{len(rep.get('tied', {}))} tied)")
        for p in rep["problems"]:
            print(f"  - {p}")
        if "generated" in rep:
            print(f"  generated: {rep['generated']!r}")
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
