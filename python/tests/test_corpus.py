"""Inputs people train on (issue 14): a text file, a directory, JSONL, Parquet, a datasets
save_to_disk directory -- the same documents give the same token stream, bad rows are
counted, structural problems are one line and exit 2."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from lesa_py import compare, corpus, cpt
from lesa_py.data import tokenize_corpus

DOCS = ["Fellow-Citizens of the Senate and House of Representatives.",
        "Call me Ishmael.\nSome years ago -- never mind how long precisely.",
        "It was the best of times, it was the worst of times."]


@pytest.fixture(scope="module")
def gemma_tok(fx):
    d = fx("gemma3-270m")
    return d, AutoTokenizer.from_pretrained(d)


def truth(tok, docs):
    """Independent: each document with the tokenizer's default special tokens, then EOS."""
    out = []
    for d in docs:
        out += tok(d).input_ids + [tok.eos_token_id]
    return out


def write_forms(root, docs):
    """The same documents as a directory of .txt, JSONL, Parquet and save_to_disk."""
    import datasets

    (root / "dir").mkdir()
    for i, d in enumerate(docs):
        (root / "dir" / f"{i:02d}.txt").write_text(d, encoding="utf-8")
    (root / "dir" / "README.md").write_text("not data")
    (root / "d.jsonl").write_text("".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(docs)))
    pq.write_table(pa.table({"id": list(range(len(docs))), "text": docs}), root / "d.parquet", row_group_size=2)
    datasets.Dataset.from_dict({"id": list(range(len(docs))), "text": docs}).save_to_disk(str(root / "saved"))
    return {"dir": root / "dir", "jsonl": root / "d.jsonl", "parquet": root / "d.parquet", "saved": root / "saved"}


def test_every_form_gives_the_model_stream(gemma_tok, tmp_path):
    d, tok = gemma_tok
    forms = write_forms(tmp_path, DOCS)
    want = truth(tok, DOCS)
    for kind, path in forms.items():
        ids, info = tokenize_corpus(tok, d, path, tmp_path / "cache")
        assert ids.tolist() == want, kind
        assert info["documents"] == 3 and info["skipped"] == {} and info["bos"] == tok.bos_token_id, kind
    assert tokenize_corpus(tok, d, forms["dir"], tmp_path / "cache")[1]["ignored_files"] == 1  # README.md
    # One text file is one document.
    (tmp_path / "one.txt").write_text(DOCS[1], encoding="utf-8")
    assert tokenize_corpus(tok, d, tmp_path / "one.txt", tmp_path / "cache")[0].tolist() == truth(tok, DOCS[1:2])


def test_long_document_keeps_one_bos_and_one_eos(gemma_tok, tmp_path, monkeypatch):
    d, tok = gemma_tok
    monkeypatch.setattr(corpus, "PIECE_CHARS", 40)  # the text file is read in several pieces
    text = "".join(f"Line {i} of a long speech about the union.\n" for i in range(30))
    (tmp_path / "long.txt").write_text(text, encoding="utf-8")
    ids = tokenize_corpus(tok, d, tmp_path / "long.txt", tmp_path / "cache")[0].tolist()
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert ids.count(tok.eos_token_id) == 1 and ids[-1] == tok.eos_token_id
    assert tok.decode(ids[1:-1]) == text


def test_jsonl_bad_rows_are_counted(gemma_tok, tmp_path):
    d, tok = gemma_tok
    rows = [json.dumps({"text": DOCS[0]}).encode(), b"{not json", json.dumps([1, 2]).encode(),
            json.dumps({"body": "x"}).encode(), json.dumps({"text": 7}).encode(), json.dumps({"text": None}).encode(),
            b'{"text": "caf\xe9"}', json.dumps({"text": ""}).encode(), b"   ", json.dumps({"text": DOCS[2]}).encode()]
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    ids, info = tokenize_corpus(tok, d, tmp_path / "bad.jsonl", tmp_path / "cache")
    assert ids.tolist() == truth(tok, [DOCS[0], DOCS[2]])
    assert info["skipped"] == {"not JSON": 1, "not a JSON object": 1, 'missing field "text"': 1,
                               '"text" not a string': 1, '"text" is null': 1, "not UTF-8": 1, "empty": 1}
    assert info["skipped_note"].startswith("7 row(s) skipped of 9 (")
    # The figures survive a cache hit.
    assert tokenize_corpus(tok, d, tmp_path / "bad.jsonl", tmp_path / "cache")[1]["skipped"] == info["skipped"]


def test_cache_key_follows_data_and_text_field(gemma_tok, tmp_path):
    d, tok = gemma_tok
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "one", "alt": "two"}) + "\n")
    cache = tmp_path / "cache"
    a = tokenize_corpus(tok, d, tmp_path / "d.jsonl", cache)[1]
    b = tokenize_corpus(tok, d, tmp_path / "d.jsonl", cache, text_field="alt")[1]
    assert a["sha256"] != b["sha256"] and len(list(cache.glob("*.npy"))) == 2
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "a.txt").write_text("one")
    c = tokenize_corpus(tok, d, tmp_path / "dd", cache)[1]
    (tmp_path / "dd" / "b.txt").write_text("two")
    assert tokenize_corpus(tok, d, tmp_path / "dd", cache)[1]["sha256"] != c["sha256"]  # a file added
    # a .txt-only input does not depend on --text-field
    assert tokenize_corpus(tok, d, tmp_path / "dd", cache, text_field="alt")[1]["sha256"] != c["sha256"]
    assert (tokenize_corpus(tok, d, tmp_path / "dd", cache, text_field="alt")[1]["sha256"]
            == tokenize_corpus(tok, d, tmp_path / "dd", cache)[1]["sha256"])


def hostile_inputs(root):
    (root / "empty").mkdir()
    (root / "nofield.jsonl").write_text("".join(json.dumps({"body": d}) + "\n" for d in DOCS))
    pq.write_table(pa.table({"body": DOCS}), root / "nocol.parquet")
    pq.write_table(pa.table({"text": [1, 2, 3]}), root / "intcol.parquet")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (root / "dd").mkdir()
    (root / "dd" / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    (root / "garbage.parquet").write_bytes(b"PAR1 not really")
    (root / "d.json").write_text(json.dumps([{"text": d} for d in DOCS]))
    return {"empty": ("no .txt, .jsonl, .parquet files", root / "empty"),
            "nofield": ('no usable documents (3 row(s) skipped of 3 (3 missing field "text"))', root / "nofield.jsonl"),
            "nocol": ('no column "text" (columns: body)', root / "nocol.parquet"),
            "intcol": ('column "text" holds int64, not text', root / "intcol.parquet"),
            "latin1": ("not UTF-8 text (invalid byte at offset 3)", root / "latin1.txt"),
            "dsdict": ("DatasetDict with splits train, test", root / "dd"),
            "garbage": ("not a readable parquet file", root / "garbage.parquet"),
            "missing": ("no such file or directory", root / "missing.txt"),
            "json": (".json files are not read", root / "d.json")}


def test_train_refuses_bad_inputs_with_one_line(fx, tmp_path, capsys):
    model = fx("tiny-llama-f32")
    for name, (msg, path) in hostile_inputs(tmp_path).items():
        code = cpt.main(["--model", str(model), "--train", str(path), "--out", str(tmp_path / f"run-{name}"),
                         "--freeze", "none", "--cache-dir", str(tmp_path / "cache"), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert err.count("\n") == 1 and err.startswith("lesa train: error:") and msg in err, (name, err)
        assert not (tmp_path / f"run-{name}").exists(), name  # nothing written


def test_compare_refuses_bad_inputs_with_one_line(fx, tmp_path, capsys):
    model = fx("tiny-llama-f32")
    good = fx("text") / "moby-dick.txt"
    for name, (msg, path) in hostile_inputs(tmp_path).items():
        code = compare.main([str(model), "--target-layers", "10", "--out", str(tmp_path / f"rep-{name}"),
                             "--train", str(path), "--eval", str(good), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert err.count("\n") == 1 and err.startswith("lesa compare: error: --train:") and msg in err, (name, err)
        assert not (tmp_path / f"rep-{name}").exists(), name


def test_train_reports_skipped_rows(fx, tmp_path, capsys):
    """`lesa train` on JSONL with bad rows: trains on the good ones and says how many it left out."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import _tiny

    text = _tiny.make_text(tmp_path / "t.txt", n_sentences=300)
    model = _tiny.make_model_dir(tmp_path / "m", text)
    lines = text.read_text().split("\n\n")
    rows = [json.dumps({"text": t}) for t in lines] + ['{"body": "x"}', "[]"]
    (tmp_path / "t.jsonl").write_text("\n".join(rows) + "\n")
    code = cpt.main(["--model", str(model), "--train", str(tmp_path / "t.jsonl"), "--out", str(tmp_path / "run"),
                     "--steps", "1", "--seq-len", "16", "--batch", "2", "--save-every", "0", "--device", "cpu",
                     "--cache-dir", str(tmp_path / "cache"), "--quiet", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f'2 row(s) skipped of {len(lines) + 2} (1 missing field "text", 1 not a JSON object)' in out.err
    summary = json.loads(out.out)
    assert summary["train_data"]["skipped"] == {'missing field "text"': 1, "not a JSON object": 1}
    assert summary["train_data"]["documents"] == len(lines)


def eval_json(capsys, model, *args):
    from lesa_py import eval as lesa_eval
    code = lesa_eval.main([str(model), *map(str, args), "--window", "32", "--stride", "16", "--device", "cpu", "--json", "--quiet"])
    out = capsys.readouterr()
    return code, out


@pytest.mark.usefixtures("single_thread")
def test_eval_reads_every_form_train_reads(fx, loaded, tmp_path, capsys):
    """`lesa eval --text` takes what `lesa train` takes, through the same reader: every form of
    the same documents scores the stream [BOS] doc [EOS] per document (computed here from the
    tokenizer directly), and bad JSONL rows are counted, not silently dropped."""
    import torch
    from lesa_py.eval import evaluate
    model_dir = fx("tiny-llama-f32")
    model, tok = loaded("tiny-llama-f32")
    want = evaluate(model, torch.tensor(truth(tok, DOCS)), window=32, stride=16)
    forms = write_forms(tmp_path, DOCS)
    for kind, path in forms.items():
        code, out = eval_json(capsys, model_dir, "--text", path)
        assert code == 0, (kind, out.err)
        got = json.loads(out.out)
        assert (got["tokens"], got["documents"], got["nll"]) == (want["tokens"], 3, want["nll"]), kind
    rows = [json.dumps({"body": DOCS[0]}), json.dumps({"body": DOCS[1]}), "{oops", json.dumps({"body": DOCS[2]}), json.dumps({"text": 1})]
    (tmp_path / "body.jsonl").write_text("\n".join(rows) + "\n")
    code, out = eval_json(capsys, model_dir, "--text", tmp_path / "body.jsonl", "--text-field", "body")
    got = json.loads(out.out)
    assert code == 0 and got["nll"] == want["nll"] and got["skipped"] == {"not JSON": 1, 'missing field "body"': 1}
    assert '2 row(s) skipped of 5 (' in out.err


def test_eval_refuses_bad_inputs_with_one_line(fx, tmp_path, capsys):
    model = fx("tiny-llama-f32")
    for name, (msg, path) in hostile_inputs(tmp_path).items():
        code, out = eval_json(capsys, model, "--text", path)
        assert code == 2, (name, out.err)
        assert out.err.count("\n") == 1 and out.err.startswith("lesa eval: error:") and msg in out.err, (name, out.err)
