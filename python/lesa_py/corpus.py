"""Documents from the inputs people train on: what `lesa train` / `lesa compare` read.

`open_corpus(path, text_field)` accepts

* a text file (UTF-8): one document;
* a directory: every ``.txt`` (one document each), ``.jsonl`` and ``.parquet`` file
  under it, in sorted path order (other files are counted and ignored);
* a JSON Lines file: one document per row, the string field ``text_field``;
* a Parquet file: one document per row of the column ``text_field``;
* a dataset written by ``datasets.Dataset.save_to_disk`` (``state.json`` + Arrow
  stream files): read with pyarrow, one document per row of ``text_field``. Nothing
  is unpickled.

A row that cannot be a document (not JSON, not an object, field missing, not a
string, not UTF-8, null, empty) is skipped and counted by reason in
`Corpus.bad`; the caller reports the figures. A structural problem (no files, a
Parquet/Arrow column missing or not text, a DatasetDict) is a `DataError`: one line.
"""
from __future__ import annotations

import codecs
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Iterator

from .errors import DataError


DIR_SUFFIXES = (".txt", ".jsonl", ".parquet")
# Text files are yielded in pieces of about this many characters, cut at line
# ends, so a multi-gigabyte document never sits in memory as one string.
PIECE_CHARS = 1 << 20
ARROW_BATCH_ROWS = 4096




class Corpus:
    """The files of one input and how to read them; `documents()` streams the text."""

    def __init__(self, path: Path, files: list[tuple[Path, str]], text_field: str, ignored: int):
        self.path, self.files, self.text_field, self.ignored = path, files, text_field, ignored
        self.bad: Counter = Counter()  # reason -> rows skipped, filled while reading
        self.documents_read = 0

    def fingerprint(self) -> str:
        """sha256 of everything that decides the tokens: kinds, names and bytes of the files,
        and the text field where one is read. Invalid UTF-8 in a text file is found here."""
        h = hashlib.sha256()
        h.update(b"lesa-corpus/1\n")
        if any(kind != "txt" for _, kind in self.files):
            h.update(f"text_field {self.text_field}\n".encode())
        for f, kind in self.files:
            rel = f.name if f == self.path else f.relative_to(self.path).as_posix()
            h.update(f"{kind}\t{rel}\t{_sha256(f, utf8_check=kind == 'txt')}\n".encode())
        return h.hexdigest()

    def documents(self) -> Iterator[Iterator[str]]:
        """One iterator of text pieces per document (empty documents are counted, not yielded)."""
        for f, kind in self.files:
            for doc in READERS[kind](f, self):
                self.documents_read += 1
                yield doc

    def describe_bad(self) -> str:
        """'' when nothing was skipped, else e.g. '3 rows skipped (2 missing field "text", 1 not UTF-8)'."""
        n = sum(self.bad.values())
        if not n:
            return ""
        parts = ", ".join(f"{c} {why}" for why, c in self.bad.most_common())
        return f"{n} row(s) skipped of {n + self.documents_read} ({parts})"


def open_corpus(path, text_field: str = "text") -> Corpus:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or directory")
    if p.is_dir():
        if (p / "dataset_dict.json").is_file():
            splits = json.loads((p / "dataset_dict.json").read_text()).get("splits", [])
            raise DataError(f"{p} is a DatasetDict with splits {', '.join(splits) or '(none)'}; "
                            f"pass one split's directory, e.g. {p / (splits[0] if splits else 'train')}")
        if (p / "state.json").is_file() and (p / "dataset_info.json").is_file():
            return Corpus(p, [(f, "arrow") for f in _arrow_files(p)], text_field, 0)
        files, ignored = [], 0
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            if any(part.startswith(".") for part in f.relative_to(p).parts):
                continue
            if f.suffix in DIR_SUFFIXES:
                files.append((f, f.suffix[1:]))
            else:
                ignored += 1
        if not files:
            raise DataError(f"{p}: no {', '.join(DIR_SUFFIXES)} files in this directory "
                            f"({ignored} other file(s))")
        corpus = Corpus(p, files, text_field, ignored)
    else:
        if p.suffix == ".json":  # would otherwise be trained on as raw JSON text
            raise DataError(f"{p}: .json files are not read; JSON Lines (one object per line) must end in .jsonl")
        kind = {".jsonl": "jsonl", ".parquet": "parquet", ".arrow": "arrow"}.get(p.suffix, "txt")
        corpus = Corpus(p, [(p, kind)], text_field, 0)
    for f, kind in corpus.files:
        if kind in ("parquet", "arrow"):
            _column_type(f, kind, text_field)  # a missing or non-text column fails now, not mid-run
    return corpus


# ----------------------------------------------------------------------------
# readers: each yields documents (iterators of text pieces) and counts bad rows


def _read_txt(f: Path, corpus: Corpus) -> Iterator[Iterator[str]]:
    if f.stat().st_size == 0:
        corpus.bad["empty"] += 1
        return
    # fingerprint() has checked the file is UTF-8 (the whole file is then one bad row).
    yield _pieces(f)


def _pieces(f: Path) -> Iterator[str]:
    buf: list[str] = []
    size = 0
    with open(f, "r", encoding="utf-8", newline="") as fh:
        for line in fh:
            buf.append(line)
            size += len(line)
            if size >= PIECE_CHARS:
                yield "".join(buf)
                buf, size = [], 0
    if buf:
        yield "".join(buf)


def _read_jsonl(f: Path, corpus: Corpus) -> Iterator[Iterator[str]]:
    field = corpus.text_field
    with open(f, "rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue  # a blank line is not a row
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                corpus.bad["not UTF-8"] += 1
                continue
            except ValueError:
                corpus.bad["not JSON"] += 1
                continue
            if not isinstance(row, dict):
                corpus.bad["not a JSON object"] += 1
            elif field not in row:
                corpus.bad[f'missing field "{field}"'] += 1
            else:
                yield from _text_value(row[field], corpus)


def _text_value(v, corpus: Corpus) -> Iterator[Iterator[str]]:
    field = corpus.text_field
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError:
            corpus.bad["not UTF-8"] += 1
            return
    if v is None:
        corpus.bad[f'"{field}" is null'] += 1
    elif not isinstance(v, str):
        corpus.bad[f'"{field}" not a string'] += 1
    elif not v:
        corpus.bad["empty"] += 1
    else:
        yield iter((v,))


def _read_columnar(f: Path, corpus: Corpus, kind: str) -> Iterator[Iterator[str]]:
    for batch in _batches(f, kind, corpus.text_field):
        for v in batch.column(0).to_pylist():
            yield from _text_value(v, corpus)


READERS = {
    "txt": _read_txt,
    "jsonl": _read_jsonl,
    "parquet": lambda f, c: _read_columnar(f, c, "parquet"),
    "arrow": lambda f, c: _read_columnar(f, c, "arrow"),
}


# ----------------------------------------------------------------------------
# Parquet and Arrow (pyarrow; imported only when such a file is read)


def _arrow_files(d: Path) -> list[Path]:
    try:
        state = json.loads((d / "state.json").read_text())
        names = [x["filename"] for x in state["_data_files"]]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{d}/state.json: not a datasets save_to_disk state file ({e})") from None
    files = [d / n for n in names]
    missing = [n for n, f in zip(names, files) if not f.is_file()]
    if missing or not files:
        raise DataError(f"{d}: save_to_disk data files missing: {', '.join(missing) or '(none listed)'}")
    return files


def _open_arrow(f: Path):
    import pyarrow as pa

    source = pa.memory_map(str(f))
    try:  # datasets writes the streaming format; accept the file format too
        return pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(str(f)))


def _schema(f: Path, kind: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(str(f)) if kind == "parquet" else _open_arrow(f).schema
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{f}: not a readable {kind} file ({e})") from None


def _column_type(f: Path, kind: str, field: str):
    import pyarrow as pa

    schema = _schema(f, kind)
    if field not in schema.names:
        raise DataError(f"{f}: no column \"{field}\" (columns: {', '.join(schema.names)}); "
                        "choose one with --text-field")
    t = schema.field(field).type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or getattr(pa.types, "is_string_view", lambda _: False)(t)):
        raise DataError(f"{f}: column \"{field}\" holds {t}, not text; choose another with --text-field")
    return t


def _batches(f: Path, kind: str, field: str):
    import pyarrow.parquet as pq

    if kind == "parquet":
        yield from pq.ParquetFile(str(f)).iter_batches(batch_size=ARROW_BATCH_ROWS, columns=[field])
    else:
        for batch in _open_arrow(f):
            yield batch.select([field])


def _sha256(f: Path, utf8_check: bool, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    dec = codecs.getincrementaldecoder("utf-8")() if utf8_check else None
    offset = 0
    with open(f, "rb") as fh:
        while True:
            b = fh.read(bufsize)
            if dec is not None:
                try:
                    dec.decode(b, final=not b)
                except UnicodeDecodeError as e:
                    raise DataError(f"{f}: not UTF-8 text (invalid byte at offset {offset + e.start}); "
                                    "convert it to UTF-8") from None
            if not b:
                break
            h.update(b)
            offset += len(b)
    return h.hexdigest()
