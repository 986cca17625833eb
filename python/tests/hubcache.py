"""Lay out a local Hugging Face hub cache from a checkpoint directory, offline, the way
huggingface_hub writes it (hub/models--ORG--NAME/{blobs, snapshots/<commit>, refs/<ref>}):
each file once as a blob named by its hash, linked from the snapshot by a relative symlink.

    python python/tests/hubcache.py HF_HOME ORG/NAME SRC_DIR [REF ...]   prints the commit

Used by the Python and TypeScript tests (test/hub.test.ts) to test hub ids without a network.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path


def populate(hf_home: Path, repo_id: str, src: Path, refs: tuple[str, ...] = ("main",),
             only: tuple[str, ...] | None = None) -> str:
    """Adds SRC's files (or those named in `only`) as one snapshot; returns its commit id."""
    repo = Path(hf_home) / "hub" / f"models--{repo_id.replace('/', '--')}"
    names = sorted(p.name for p in Path(src).iterdir() if p.is_file() and (only is None or p.name in only))
    digests = {n: hashlib.sha256((Path(src) / n).read_bytes()).hexdigest() for n in names}
    # A commit id that depends on the content, as a real one does (40 hex digits).
    commit = hashlib.sha1("".join(f"{n}:{d}\n" for n, d in digests.items()).encode()).hexdigest()
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for n, d in digests.items():
        blob = repo / "blobs" / d
        if not blob.exists():
            shutil.copyfile(Path(src) / n, blob)
        link = snap / n
        if not link.is_symlink():
            os.symlink(os.path.relpath(blob, snap), link)
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return commit


if __name__ == "__main__":
    home, rid, source, *rest = sys.argv[1:]
    print(populate(Path(home), rid, Path(source), tuple(rest) or ("main",)))
