"""Token data for continued pre-training and held-out loss: tokenise once, cache, cut windows.

* `conventions` reads, from the tokenizer itself, the model's input conventions:
  whether it puts BOS in front of a text by default, and its EOS.
* `tokenize_corpus` turns the documents of an input (`corpus.open_corpus`: a text
  file, a directory, JSONL, Parquet, a `save_to_disk` dataset) into one stream of
  token ids, each document as the model was trained on it -- ``[BOS] doc [EOS]``
  (BOS only where the tokenizer adds one) -- and caches it as ``.npy``, keyed by the
  tokenizer files and the data fingerprint (files and the options that change tokens).
* `WindowSampler` draws random windows of ``seq_len + 1`` tokens (inputs plus the
  shifted targets) with its own seeded generator; its state is a small JSON dict,
  saved in checkpoints. With a BOS model every window starts with exactly one BOS.
* `eval_windows` cuts the first ``n_tokens`` of a held-out stream into fixed windows,
  every token a target once; with a BOS model each window is BOS + the next tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .corpus import open_corpus
from .errors import DataError  # re-exported: callers import it from here

# Files a HF tokenizer may be made of. Their bytes (with the names) key the
# cache: a different vocabulary or normaliser must never reuse cached ids.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
)

# Pieces of text are tokenised in batches of about this many characters.
BATCH_CHARS = 4 << 20
BATCH_PIECES = 4096
CACHE_VERSION = "lesa-tokens/2"  # 2: documents as [BOS] doc [EOS]


def sha256_file(path: os.PathLike, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def tokenizer_hash(model_dir: os.PathLike) -> str:
    """Hash of every tokenizer file in `model_dir` (names and bytes)."""
    import tokenizers  # the library version is part of the key: it defines the ids

    h = hashlib.sha256()
    h.update(f"{CACHE_VERSION}\ntokenizers {tokenizers.__version__}\n".encode())
    found = False
    for name in TOKENIZER_FILES:
        p = Path(model_dir) / name
        if p.is_file():
            found = True
            h.update(f"{name} {sha256_file(p)}\n".encode())
    if not found:
        raise DataError(
            f"no tokenizer files in {model_dir} (looked for {', '.join(TOKENIZER_FILES)})"
        )
    return h.hexdigest()


@dataclass(frozen=True)
class Conventions:
    """How the model sees a document: ``[bos] text [eos]`` (None: not used)."""

    bos: Optional[int]  # the tokenizer puts it in front of a text by default
    eos: Optional[int]  # closes every document (the separator before the next BOS)


def conventions(tokenizer) -> Conventions:
    """Read from the tokenizer itself (no per-family table): BOS if ``tokenizer("x")``
    starts with it -- tokenizer_config flags such as add_bos_token are not reliable
    (Gemma 3's says False and adds one) -- and the tokenizer's EOS."""
    probe = list(tokenizer("x")["input_ids"])
    bos = tokenizer.bos_token_id
    bos = bos if bos is not None and probe[:1] == [bos] else None
    eos = tokenizer.eos_token_id
    return Conventions(bos=bos, eos=None if eos is None or eos == bos else eos)


def encode_documents(tokenizer, documents, conv: Conventions) -> np.ndarray:
    """uint32 stream of ``[bos] ids(doc) [eos]`` for each document (an iterable of text
    pieces). Pieces are encoded without special tokens and batched for speed."""
    parts: list[np.ndarray] = []
    batch: list[tuple[str, bool, bool]] = []  # (text, starts a document, ends one)
    chars = 0

    def flush():
        if not batch:
            return
        ids = tokenizer([t for t, _, _ in batch], add_special_tokens=False)["input_ids"]
        for (_, first, last), x in zip(batch, ids):
            seq = ([conv.bos] if first and conv.bos is not None else []) + list(x)
            seq += [conv.eos] if last and conv.eos is not None else []
            parts.append(np.asarray(seq, dtype=np.uint32))
        batch.clear()

    for doc in documents:
        it = iter(doc)
        piece, first = next(it, None), True
        while piece is not None:
            nxt = next(it, None)
            batch.append((piece, first, nxt is None))
            chars += len(piece)
            first, piece = False, nxt
            if chars >= BATCH_CHARS or len(batch) >= BATCH_PIECES:
                flush()
                chars = 0
    flush()
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)


def encode_corpus(tokenizer, corpus, conv: Conventions) -> np.ndarray:
    """`encode_documents` over an opened corpus; no usable document is a `DataError`
    (the skipped rows are in `corpus.bad` for the caller to report)."""
    ids = encode_documents(tokenizer, corpus.documents(), conv)
    if corpus.documents_read == 0:
        raise DataError(f"{corpus.path}: no usable documents ({corpus.describe_bad() or 'no text'})")
    return ids


def cache_path(cache_dir: os.PathLike, tok_hash: str, data_hash: str) -> Path:
    return Path(cache_dir) / f"{tok_hash[:20]}-{data_hash[:20]}.npy"


def cache_problem(path: Path, tokenizer, corpus, conv: "Conventions", probe_chars: int = 4096) -> Optional[str]:
    """None if the cached ids at `path` can be trusted for `corpus`, else what is wrong.

    The file name carries the tokenizer and data hashes, but a file can be cut
    short (a full disk, a copy) or copied in from elsewhere: check the .npy header
    against the file size, the ids against the vocabulary, and that the first
    document's first lines encode to the cache's first ids.
    """
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            data_start = f.tell()
    except (OSError, ValueError, SyntaxError) as e:
        return f"is not a readable .npy file ({e})"
    if dtype != np.uint32 or len(shape) != 1 or fortran:
        return f"holds {dtype} {shape}, expected a flat uint32 array"
    size = path.stat().st_size
    if size != data_start + 4 * shape[0]:
        return f"is {size} bytes, its header says {data_start + 4 * shape[0]} (truncated?)"
    ids = np.load(path, mmap_mode="r")
    head = np.asarray(ids[: 1 << 20])
    if head.size and int(head.max()) >= len(tokenizer):
        return f"holds id {int(head.max())}, beyond this tokenizer's {len(tokenizer)} tokens"
    first = next(iter(corpus.documents()), None)
    text = next(iter(first), "") if first is not None else ""
    text = text[:probe_chars]
    text = text[: text.rfind("\n") + 1] or text
    # the cut may merge differently at its end; the EOS closing the probe is not in the cache there
    want = encode_documents(tokenizer, [[text]], Conventions(bos=conv.bos, eos=None))[:-8]
    if want.size and not np.array_equal(np.asarray(ids[: want.size]), want):
        return "does not start with this tokenizer's ids for this data (written for another tokenizer?)"
    return None


def tokenize_corpus(tokenizer, model_dir: os.PathLike, source: os.PathLike, cache_dir: os.PathLike, *,
                    text_field: str = "text", build: bool = True) -> tuple[np.ndarray, dict]:
    """Token ids of the documents in `source` (uint32, memory-mapped from the cache).

    With ``build=False`` the cache must already exist (other ranks wait for rank 0
    to build it). Returns (ids, info): info identifies the data (``sha256`` is the
    data fingerprint) and holds the conventions and the skipped-row figures, also
    on a cache hit (they live in a JSON file beside the ``.npy``).
    """
    corpus = open_corpus(source, text_field)
    tok_hash = tokenizer_hash(model_dir)
    data_hash = corpus.fingerprint()
    out = cache_path(cache_dir, tok_hash, data_hash)
    meta_path = out.with_suffix(".json")
    if build and out.is_file():
        why = cache_problem(out, tokenizer, open_corpus(source, text_field), conventions(tokenizer))
        if why:
            print(f"lesa: token cache {out} {why}; rebuilding it", file=sys.stderr, flush=True)
            out.unlink()
    if not (out.is_file() and meta_path.is_file()):
        if not build:
            raise DataError(f"token cache {out} missing (rank 0 should have built it)")
        out.parent.mkdir(parents=True, exist_ok=True)
        conv = conventions(tokenizer)
        ids = encode_corpus(tokenizer, corpus, conv)
        meta = {"format": CACHE_VERSION, "bos": conv.bos, "eos": conv.eos, "documents": corpus.documents_read,
                "skipped": dict(corpus.bad), "skipped_note": corpus.describe_bad(),
                "ignored_files": corpus.ignored, "files": len(corpus.files)}
        # Private temp names, then rename (meta first: the .npy marks completion):
        # readers never see a partial file, and racing writers write the same bytes.
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, ids)
            f.flush()
            os.fsync(f.fileno())
        tmp_meta = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(meta) + "\n")
        os.replace(tmp_meta, meta_path)
        os.replace(tmp, out)
    meta = json.loads(meta_path.read_text())
    ids = np.load(out, mmap_mode="r")
    info = {"path": str(source), "sha256": data_hash, "tokenizer": tok_hash, "tokens": int(ids.shape[0]),
            "text_field": text_field, **{k: v for k, v in meta.items() if k != "format"}}
    return ids, info


class WindowSampler:
    """Random windows of ``seq_len + 1`` tokens from one token stream.

    With ``bos`` (the model's BOS, see `conventions`) every window starts with
    exactly one BOS: a window drawn at a document start is taken as is, any other is
    BOS + the next ``seq_len`` tokens, and a draw landing on an EOS moves to the
    following BOS (no [BOS, EOS, BOS] window). Without, windows are plain slices.

    The generator is numpy's PCG64 seeded by ``SeedSequence(seed, spawn_key=(rank,))``:
    every rank gets a statistically independent stream, and the whole state is a
    JSON-able dict (`state_dict` / `load_state_dict`) stored in checkpoints.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, batch: int, seed: int, rank: int = 0,
                 bos: Optional[int] = None, eos: Optional[int] = None):
        n = int(tokens.shape[0])
        need = seq_len + 1 + (bos is not None)  # one spare token so a start moved past an EOS fits
        if n < need:
            raise DataError(f"training data has {n} tokens; one window needs {need} (seq_len {seq_len})")
        self.tokens, self.seq_len, self.batch, self.bos, self.eos = tokens, seq_len, batch, bos, eos
        self.n_starts = n - need + 1
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(rank,))))

    def window(self, s: int) -> np.ndarray:
        t, L = self.tokens, self.seq_len
        if self.bos is None:
            return np.asarray(t[s : s + L + 1], dtype=np.int64)
        if self.eos is not None and t[s] == self.eos:
            s += 1
        if t[s] == self.bos:
            return np.asarray(t[s : s + L + 1], dtype=np.int64)
        return np.concatenate([[self.bos], np.asarray(t[s : s + L], dtype=np.int64)])

    def next_batch(self) -> np.ndarray:
        """int64 array [batch, seq_len + 1]."""
        starts = self.rng.integers(0, self.n_starts, size=self.batch)
        return np.stack([self.window(int(s)) for s in starts])

    def state_dict(self) -> dict:
        return self.rng.bit_generator.state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def eval_windows(tokens: np.ndarray, seq_len: int, n_tokens: Optional[int], bos: Optional[int] = None,
                 eos: Optional[int] = None) -> np.ndarray:
    """Fixed windows over the first `n_tokens` tokens: int64 [n_windows, seq_len + 1].

    Without ``bos`` windows overlap by one token (stride seq_len), so every token
    after the first is a target exactly once. With ``bos`` every window starts with
    one BOS: at a document start the stream's own BOS, elsewhere an inserted one
    followed by the next seq_len tokens, so every token is a target exactly once
    (an EOS that would open a window is skipped: it is not scored).
    """
    t = np.asarray(tokens if n_tokens is None else tokens[:n_tokens], dtype=np.int64)
    n = int(t.shape[0])
    out: list[np.ndarray] = []
    if bos is None:
        out = [t[s : s + seq_len + 1] for s in range(0, n - seq_len, seq_len)]
    else:
        pos = 0
        while pos < n:
            if eos is not None and t[pos] == eos and pos + 1 < n and t[pos + 1] == bos:
                pos += 1
            if t[pos] == bos:
                w, pos = t[pos : pos + seq_len + 1], pos + seq_len + 1
            else:
                w, pos = np.concatenate([[bos], t[pos : pos + seq_len]]), pos + seq_len
            if len(w) == seq_len + 1:
                out.append(w)
    if not out:
        raise DataError(f"eval data gives {n} tokens (after --eval-tokens); one window needs "
                        f"seq_len + 1 = {seq_len + 1}")
    return np.stack(out)
