"""`lesa train` and `lesa eval` on grown image-text wrappers (Gemma 3, Qwen2.5-VL), text only:
with --freeze original exactly the new decoder layers' tensors change in the files written
back (vision tower, embeddings and original layers byte-identical), and eval scores the
wrapper's language model (an identity expansion scores what the source scores)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lesa_py import cpt
from lesa_py import eval as lesa_eval
from _cli import lesa, manifest
from test_moe_vlm import tensors, text_cfg

pytestmark = pytest.mark.usefixtures("single_thread")

# Where each wrapper's decoder layers are in its files.
PREFIX = {"gemma3vlm": "language_model.model.layers.", "qwen25vl": "model.layers."}


@pytest.mark.parametrize("arch", list(PREFIX))
def test_train_changes_only_the_new_text_layers(fx, tmp_path, moby, arch):
    src = fx(f"tiny-{arch}-f32")
    grown = tmp_path / "grown"
    lesa("expand", src, "-o", grown, "--method", "copy", "--target-layers", text_cfg(src)["num_hidden_layers"] + 1,
         "--after", "1", "--quiet")
    (tmp_path / "t.txt").write_text(moby[:4000], encoding="utf-8")
    s = cpt.train(dict(model=str(grown), train=str(tmp_path / "t.txt"), out=str(tmp_path / "run"),
                       cache_dir=str(tmp_path / "cache"), steps=2, seq_len=16, batch=2, lr=1e-2, warmup=0,
                       save_every=0, save_final=True, freeze="original", quiet=True, device="cpu", dtype="f32"))
    new = manifest(grown)["new_layers"]
    assert new == [2]
    final = Path(s["final"])
    before, after = tensors(grown), tensors(final)
    assert before.keys() == after.keys()  # written back in the files' own layout
    changed = sorted(k for k in before if not before[k].equal(after[k]))
    mine = sorted(k for k in before if k.startswith(f"{PREFIX[arch]}2."))
    assert changed == mine and len(mine) >= 9, changed
    assert json.loads((final / "lesa.json").read_text())["training"]["trained_layers"] == new


@pytest.mark.parametrize("arch", list(PREFIX))
def test_training_an_unexpanded_wrapper_records_its_files_layer_names(fx, tmp_path, moby, arch):
    src = fx(f"tiny-{arch}-f32")
    (tmp_path / "t.txt").write_text(moby[:2000], encoding="utf-8")
    s = cpt.train(dict(model=str(src), train=str(tmp_path / "t.txt"), out=str(tmp_path / "run"),
                       cache_dir=str(tmp_path / "cache"), steps=1, seq_len=16, batch=1, warmup=0,
                       save_every=0, save_final=True, freeze="none", quiet=True, device="cpu", dtype="f32"))
    m = json.loads((Path(s["final"]) / "lesa.json").read_text())
    n = text_cfg(src)["num_hidden_layers"]
    names = tensors(Path(s["final"])).keys()
    assert m["layer_prefix"] == PREFIX[arch] and m["target_layers"] == n and m["method"] == "none"
    assert all(any(k.startswith(f"{m['layer_prefix']}{i}.") for k in names) for i in range(n))


def eval_nll(capsys, model, text) -> float:
    code = lesa_eval.main([str(model), "--text", str(text), "--window", "32", "--stride", "16", "--max-tokens", "200",
                           "--device", "cpu", "--json", "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)["nll"]


@pytest.mark.parametrize("arch", list(PREFIX))
def test_eval_scores_the_wrappers_language_model(fx, tmp_path, moby, capsys, arch):
    src = fx(f"tiny-{arch}-f32")
    grown = tmp_path / "grown"
    lesa("expand", src, "-o", grown, "--method", "llama-pro", "--target-layers", text_cfg(src)["num_hidden_layers"] + 2, "--quiet")
    (tmp_path / "t.txt").write_text(moby[:3000], encoding="utf-8")
    a, b = eval_nll(capsys, src, tmp_path / "t.txt"), eval_nll(capsys, grown, tmp_path / "t.txt")
    assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), (a, b)
    # A copy (no identity) scores differently: the new layer is really in the model eval runs.
    lesa("expand", src, "-o", tmp_path / "copy", "--method", "copy", "--target-layers", text_cfg(src)["num_hidden_layers"] + 1, "--quiet")
    assert abs(eval_nll(capsys, tmp_path / "copy", tmp_path / "t.txt") - a) > 1e-4
