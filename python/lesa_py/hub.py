"""Resolve a Hugging Face hub id to a local checkpoint directory (safetensors only).

    python -m lesa_py.hub ORG/NAME[@REVISION] [--json]   prints the local snapshot directory
                                                       (--json: {"path", "repo", "revision", "commit"})

`huggingface_hub` does the work, so its environment applies as usual: HF_HOME / HF_HUB_CACHE
(where the cache lives), HF_HUB_OFFLINE=1 (cache only, no network), HF_TOKEN (gated and
private repos), HF_ENDPOINT. Only weights in safetensors, JSON configs and tokenizer files
are fetched; a repo whose weights are pickles only is refused before anything is downloaded.
Exit codes: 0 ok (the path on stdout), 2 user error (one line on stderr).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# Configs (config.json, generation_config.json, tokenizer_config.json, the shard index) and
# every tokenizer format transformers reads; weights are added per repo (see weight_patterns).
AUX_PATTERNS = ["*.json", "tokenizer.model", "*.tiktoken", "merges.txt", "vocab.txt", "*.jinja"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# org/name: the hub's own rules (validate_repo_id) are checked after this shape test.
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?:@(?P<rev>.*))?$")
REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


from .errors import UserError  # noqa: E402  (re-exported: hub.UserError)


def parse(spec: str) -> tuple[str, str | None]:
    """'org/name[@rev]' -> (repo_id, revision or None); anything else is a UserError."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    m = HUB_ID.match(spec)
    if not m:
        raise UserError(f"{spec!r} is neither a directory nor a Hugging Face hub id "
                        "(expected ORG/NAME or ORG/NAME@REVISION)")
    repo, rev = m.group("repo"), m.group("rev")
    if rev is not None and (not REVISION.match(rev) or ".." in rev):
        raise UserError(f"{spec!r}: bad revision {rev!r} after '@' (expected a branch, tag or commit)")
    try:
        validate_repo_id(repo)
    except HFValidationError as e:
        raise UserError(f"{spec!r} is not a valid hub id: {e}") from None
    return repo, rev


def weight_patterns(files: list[str]) -> list[str]:
    """The safetensors to fetch given the repo's file list; refuses pickle-only repos.
    When the transformers weights (model*.safetensors) exist, other safetensors in the repo
    (e.g. Mistral's consolidated.safetensors, a second copy of the weights) are left out."""
    safetensors = [f for f in files if f.endswith(".safetensors")]
    if not safetensors:
        pickles = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES))
        what = f"only pickle weights ({', '.join(pickles[:3])}{', ...' if len(pickles) > 3 else ''})" if pickles else "no *.safetensors weights"
        raise UserError(f"the repo has {what}; only safetensors checkpoints are accepted")
    if any(Path(f).name.startswith("model") for f in safetensors):
        return ["model*.safetensors"]
    return ["*.safetensors"]


def resolve(spec: str) -> Path:
    """The local directory holding the repo's snapshot at the revision (downloaded if needed)."""
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub import errors as E

    repo, rev = parse(spec)
    where = f"{repo}{'@' + rev if rev else ''}"
    quiet_hub()
    try:
        if constants.HF_HUB_OFFLINE:
            path = cached(repo, rev, "HF_HUB_OFFLINE is set")
        else:
            try:
                files = [s.rfilename for s in HfApi().model_info(repo, revision=rev).siblings or []]
            except E.HfHubHTTPError:
                raise
            except Exception as e:  # no network: the cache may still have it, as huggingface_hub does
                path = cached(repo, rev, f"the hub cannot be reached ({type(e).__name__}: {first_line(e)})")
            else:
                path = Path(snapshot_download(repo, revision=rev, allow_patterns=weight_patterns(files) + AUX_PATTERNS))
    except E.GatedRepoError:
        raise UserError(f"{where}: gated repo; accept its terms on the hub and set HF_TOKEN") from None
    except E.RevisionNotFoundError:
        raise UserError(f"{where}: no such revision in the repo") from None
    except E.RepositoryNotFoundError:
        raise UserError(f"{where}: no such repo on the hub (or it is private: set HF_TOKEN)") from None
    except E.HfHubHTTPError as e:
        raise UserError(f"{where}: the hub answered {first_line(e)}") from None
    except OSError as e:  # disk full, permissions in HF_HOME
        raise UserError(f"{where}: cannot write the download to {constants.HF_HUB_CACHE}: {e}") from None
    if not any(path.glob("*.safetensors")):  # offline: the cache may hold a pickle-only snapshot
        weight_patterns([p.name for p in path.iterdir()])
    return path


def local_dir(arg: str) -> Path:
    """A checkpoint argument as a local directory: a path stays a path; a hub id is resolved.
    The same rule as src/cli/hub.ts resolveModel: an existing path, one without '/', or one
    starting with '.', '/' or '~' is a path (so a missing local path gets the path's error)."""
    if Path(arg).exists() or "/" not in arg or arg[:1] in "./~":
        return Path(arg)
    return resolve(arg)


def cached(repo: str, rev: str | None, why: str) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=rev, local_files_only=True))
    except LocalEntryNotFoundError:
        where = f"{repo}{'@' + rev if rev else ''}"
        raise UserError(f"{where} is not in the local cache ({constants.HF_HUB_CACHE}) and {why}") from None


def first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def quiet_hub() -> None:
    """huggingface_hub logs retries and warnings on stderr; our errors are one line."""
    from huggingface_hub.utils import disable_progress_bars, logging

    logging.set_verbosity_error()
    disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    if len(args) != 1:
        print("usage: python -m lesa_py.hub ORG/NAME[@REVISION] [--json]", file=sys.stderr)
        return 2
    try:
        path = resolve(args[0])
    except UserError as e:
        print(f"lesa: {e}", file=sys.stderr)
        return 2
    repo, rev = parse(args[0])
    # the cache's snapshot folder is named by the commit the revision resolved to
    print(json.dumps({"path": str(path), "repo": repo, "revision": rev or "main", "commit": path.name}) if as_json else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
