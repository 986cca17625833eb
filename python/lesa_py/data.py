"""Token data for continued pre-training: tokenise once, cache, sample windows.

Three pieces, each small and deterministic:

* `tokenize_file` turns a text file into a flat array of token ids with the
  model's tokenizer and caches it as ``.npy``, keyed by a hash of the tokenizer
  files and of the text, so a second run (or a second method in `compare`, which
  shares the base tokenizer) skips the work.
* `WindowSampler` draws contiguous windows of ``seq_len + 1`` tokens (inputs plus
  the shifted targets) with its own seeded generator. Its state is a small JSON
  dict, saved in every checkpoint, so a resumed run draws the exact windows the
  uninterrupted run would have drawn. Under data parallelism each rank gets its
  own stream (the rank is part of the seed).
* `eval_windows` cuts the first ``n_tokens`` of a held-out file into fixed,
  non-overlapping windows: the same tokens every time, every token predicted
  once.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

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

# Text is tokenised in chunks of about this many characters, cut at line ends,
# so a multi-gigabyte corpus never sits in memory as one Python string.
CHUNK_CHARS = 1 << 20
CACHE_VERSION = "lesa-tokens/1"


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


def _chunks(path: Path) -> Iterator[str]:
    """Yield the file's text in pieces of ~CHUNK_CHARS, each ending at a line end."""
    buf: list[str] = []
    size = 0
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            buf.append(line)
            size += len(line)
            if size >= CHUNK_CHARS:
                yield "".join(buf)
                buf, size = [], 0
    if buf:
        yield "".join(buf)


def _encode(tokenizer, path: Path) -> np.ndarray:
    parts: list[np.ndarray] = []
    batch: list[str] = []

    def flush():
        if batch:
            # add_special_tokens=False: the corpus is one continuous stream; a BOS
            # in front of every 1 MB chunk would be an artefact of the chunking.
            ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
            parts.extend(np.asarray(x, dtype=np.uint32) for x in ids)
            batch.clear()

    for chunk in _chunks(path):
        batch.append(chunk)
        if len(batch) >= 16:
            flush()
    flush()
    if not parts:
        return np.zeros(0, dtype=np.uint32)
    return np.concatenate(parts)


def cache_path(cache_dir: os.PathLike, tok_hash: str, text_hash: str) -> Path:
    return Path(cache_dir) / f"{tok_hash[:20]}-{text_hash[:20]}.npy"


def cache_problem(path: Path, tokenizer, text_path: Path, probe_chars: int = 4096) -> Optional[str]:
    """None if the cached ids at `path` can be trusted for `text_path`, else what is wrong.

    The file name carries the tokenizer and text hashes, but a file can be cut
    short (a full disk, a copy) or copied in from elsewhere: check the .npy header
    against the file size, the ids against the vocabulary, and that the text's
    first lines encode to the cache's first ids.
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
    with open(text_path, "r", encoding="utf-8") as f:
        text = f.read(probe_chars)
    text = text[: text.rfind("\n") + 1] or text
    want = tokenizer(text, add_special_tokens=False)["input_ids"][:-8]  # the cut may merge differently
    if want and not np.array_equal(np.asarray(ids[: len(want)]), np.asarray(want, dtype=np.uint32)):
        return "does not start with this tokenizer's ids for this text (written for another tokenizer?)"
    return None


def tokenize_file(
    tokenizer,
    model_dir: os.PathLike,
    text_path: os.PathLike,
    cache_dir: os.PathLike,
    *,
    build: bool = True,
) -> tuple[np.ndarray, dict]:
    """Token ids of `text_path` (uint32, memory-mapped from the cache).

    With ``build=False`` the cache must already exist (other ranks wait for
    rank 0 to build it, then call with build=False). Returns (ids, info), info
    holding the hashes that identify the data in a checkpoint.
    """
    text_path = Path(text_path)
    if not text_path.is_file():
        raise DataError(f"text file not found: {text_path}")
    tok_hash = tokenizer_hash(model_dir)
    text_hash = sha256_file(text_path)
    out = cache_path(cache_dir, tok_hash, text_hash)
    if build and out.is_file():
        why = cache_problem(out, tokenizer, text_path)
        if why:
            print(f"lesa: token cache {out} {why}; rebuilding it", file=sys.stderr, flush=True)
            out.unlink()
    if not out.is_file():
        if not build:
            raise DataError(f"token cache {out} missing (rank 0 should have built it)")
        out.parent.mkdir(parents=True, exist_ok=True)
        ids = _encode(tokenizer, text_path)
        # Write to a private temp name and rename: readers never see a partial
        # file, and two writers racing produce the same bytes anyway.
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, ids)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    ids = np.load(out, mmap_mode="r")
    info = {"path": str(text_path), "sha256": text_hash, "tokenizer": tok_hash, "tokens": int(ids.shape[0])}
    return ids, info


class WindowSampler:
    """Random contiguous windows of ``seq_len + 1`` tokens from one token array.

    The generator is numpy's PCG64 seeded by ``SeedSequence(seed, spawn_key=(rank,))``:
    every rank gets a statistically independent stream, and the whole state is a
    JSON-able dict (`state_dict` / `load_state_dict`) stored in checkpoints.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, batch: int, seed: int, rank: int = 0):
        n = int(tokens.shape[0])
        if n < seq_len + 1:
            raise DataError(
                f"training text has {n} tokens; one window needs seq_len + 1 = {seq_len + 1}"
            )
        self.tokens = tokens
        self.seq_len = seq_len
        self.batch = batch
        self.n_starts = n - seq_len  # valid starts: 0 .. n - seq_len - 1
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(rank,))))

    def next_batch(self) -> np.ndarray:
        """int64 array [batch, seq_len + 1]."""
        starts = self.rng.integers(0, self.n_starts, size=self.batch)
        return np.stack([np.asarray(self.tokens[s : s + self.seq_len + 1], dtype=np.int64) for s in starts])

    def state_dict(self) -> dict:
        return self.rng.bit_generator.state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def eval_windows(tokens: np.ndarray, seq_len: int, n_tokens: Optional[int]) -> np.ndarray:
    """Fixed windows over the first `n_tokens` tokens: int64 [n_windows, seq_len + 1].

    Windows overlap by one token (stride seq_len) so every token after the first
    is a target exactly once.
    """
    t = tokens if n_tokens is None else tokens[:n_tokens]
    n = int(t.shape[0])
    if n < seq_len + 1:
        raise DataError(
            f"eval text gives {n} tokens (after --eval-tokens); one window needs seq_len + 1 = {seq_len + 1}"
        )
    starts = range(0, n - seq_len, seq_len)
    return np.stack([np.asarray(t[s : s + seq_len + 1], dtype=np.int64) for s in starts])
