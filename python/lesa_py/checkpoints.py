"""Training checkpoints that survive SIGKILL, full disks and bit rot.

Layout: ``OUT/ckpt/step-00000300/{model.safetensors, optimizer.safetensors,
state.json, checksums.json}`` and ``OUT/ckpt/latest`` (informational). A
checkpoint is written into a hidden sibling ``.tmp-step-…``, every file fsynced
and hashed, ``checksums.json`` (sha256 of the other three) written last, then
the directory is renamed. So a ``step-*`` name only ever holds a complete
checkpoint; one whose files no longer match their sha256 is refused and the next
older one used (`find_checkpoint`). A killed save leaves only a hidden temp dir,
removed by the next run (`remove_partial`).

`failpoint` is the fault-injection hook of the kill trials (bench/train_kill_trials.py):
with ``LESA_CPT_KILL_AT=name:n`` the process SIGKILLs itself the n-th time it
reaches `name`; without it the call is one dict lookup.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import random
import shutil
import signal
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .data import sha256_file
from .errors import CheckpointError  # a checkpoint that cannot be written or used: one line, exit 2

CKPT_FORMAT = "lesa-cpt-ckpt/2"
CHECKSUMS = "checksums.json"
CKPT_FILES = ("model.safetensors", "optimizer.safetensors", "state.json")
STEP_GLOB = "step-[0-9]*"




_passes: dict[str, int] = {}


def failpoint(name: str) -> None:
    spec = os.environ.get("LESA_CPT_KILL_AT")
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want == name:
        _passes[name] = _passes.get(name, 0) + 1
        if _passes[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _is_disk_full(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    # safetensors' Rust writer reports I/O errors as SafetensorError("... (os error N)").
    return any(f"(os error {n})" in str(e) for n in (errno.ENOSPC, errno.EDQUOT))


@contextlib.contextmanager
def staged_dir(final: Path, need: int, what: str, fix: str) -> Iterator[Path]:
    """Yield a hidden temp dir beside `final`; on success fsync and rename it to `final`.

    `need` (bytes) is checked against the free space first, and a disk that fills
    anyway ends in the same one-line CheckpointError. On any failure the temp dir
    is removed: no partial directory is left under a real name or a temp one.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)

    def full(free: int) -> CheckpointError:
        return CheckpointError(f"disk full writing {what} to {final.parent}: it needs {need} bytes, "
                               f"{free} are free; {fix}")

    free = free_bytes(final.parent)
    if need > free:
        raise full(free)
    try:
        tmp.mkdir()
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        failpoint("save.synced")
        if final.exists():  # only ever a refused (corrupt) checkpoint or an old final/
            old = final.parent / f".tmp-old-{final.name}-{os.getpid()}"
            os.rename(final, old)  # out of sight before deleting: see save_checkpoint's pruning
            shutil.rmtree(old)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_disk_full(e):
            raise full(free_bytes(final.parent)) from None
        raise


def remove_partial(out: Path) -> list[str]:
    """Remove temp dirs that a killed run left in OUT (and OUT/ckpt); their names."""
    gone = []
    for root in (out, out / "ckpt"):
        for d in sorted(root.glob(".tmp-*")) if root.is_dir() else []:
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d.name)
    return gone


def check_complete(path: Path) -> Optional[str]:
    """None if `path` is a complete checkpoint whose files match checksums.json, else why not."""
    try:
        sums = json.loads((path / CHECKSUMS).read_text())
    except FileNotFoundError:
        return f"no {CHECKSUMS} (incomplete, or written by an older lesa)"
    except (OSError, ValueError) as e:
        return f"{CHECKSUMS} unreadable ({e})"
    files = sums.get("files") if isinstance(sums, dict) else None
    if sums.get("format") != CKPT_FORMAT or not isinstance(files, dict) or set(files) != set(CKPT_FILES):
        return f"{CHECKSUMS} is not a {CKPT_FORMAT} checksum list"
    for name, want in files.items():
        try:
            got = sha256_file(path / name)
        except OSError as e:
            return f"{name} unreadable ({e.strerror})"
        if got != want:
            return f"{name} does not match its sha256 (recorded {want[:12]}…, now {got[:12]}…)"
    return None


def find_checkpoint(out: Path) -> tuple[Optional[Path], list[str]]:
    """The newest complete, intact checkpoint in OUT/ckpt, and one line per newer one refused."""
    refused = []
    for d in sorted((out / "ckpt").glob(STEP_GLOB), reverse=True):
        why = check_complete(d)
        if why is None:
            return d, refused
        refused.append(f"checkpoint {d} refused: {why}")
    return None, refused


def newest_checkpoint(out: Path) -> Optional[Path]:
    """The newest step dir by name (what this run wrote last); no hashing."""
    done = sorted((out / "ckpt").glob(STEP_GLOB))
    return done[-1] if done else None


# ----------------------------------------------------------------------------
# state: RNGs, optimizer


def rng_state() -> dict:
    """This process's RNG states, JSON-able."""
    import torch

    py = random.getstate()
    npst = np.random.get_state()
    st = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = base64.b64encode(torch.cuda.get_rng_state().numpy().tobytes()).decode()
    return st


def set_rng_state(st: dict) -> None:
    import torch

    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = st["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(st["torch"])), dtype=torch.uint8))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(st["cuda"])), dtype=torch.uint8))


def _jsonable(x):
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return x


def _options(strict: bool = True):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # Full (unsharded) tensors on CPU: the same files whatever the world size or
    # wrapping; only trainable params (frozen ones are in --model already).
    return StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True, strict=strict)


def _flatten_optim(osd: dict) -> tuple[dict, dict]:
    """Nested optimizer state (keyed by parameter name) -> (tensors for safetensors, JSON rest)."""
    import torch

    tensors, scalars = {}, {}
    for fqn, st in osd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{fqn}/{k}"] = v.detach().contiguous().cpu()
            else:
                scalars[f"{fqn}/{k}"] = v
    return tensors, {"scalars": scalars, "param_groups": _jsonable(osd["param_groups"])}


def _unflatten_optim(tensors: dict, rest: dict) -> dict:
    state: dict[str, dict] = {}
    for key, v in list(tensors.items()) + list(rest["scalars"].items()):
        fqn, k = key.rsplit("/", 1)
        state.setdefault(fqn, {})[k] = v
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in rest["param_groups"]]
    return {"state": state, "param_groups": groups}


def _tensor_bytes(tensors: dict) -> int:
    # Data plus a generous allowance for the safetensors JSON header.
    return sum(t.numel() * t.element_size() + 200 for t in tensors.values()) + 4096


def everyone_or_nobody(failure: Optional[BaseException], world: int) -> None:
    """Collective: rank 0's failure (if any) is raised on every rank, so none waits for a dead peer."""
    if world > 1:
        import torch.distributed as dist

        msg = [str(failure) if failure is not None else None]
        dist.broadcast_object_list(msg, src=0)
        if msg[0] is not None and failure is None:
            raise CheckpointError(msg[0])
    if failure is not None:
        raise failure


def save_checkpoint(out: Path, step: int, model, optimizer, sampler, trainable: list[str], state: dict,
                    rank: int, world: int, keep: int = 1) -> Optional[Path]:
    """Collective: every rank calls it; rank 0 writes OUT/ckpt/step-N."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    msd = get_model_state_dict(model, options=_options())
    osd = get_optimizer_state_dict(model, optimizer, options=_options())
    per_rank = {"sampler": sampler.state_dict(), "rng": rng_state()}
    gathered = [per_rank]
    if world > 1:
        import torch.distributed as dist

        gathered = [None] * world
        dist.all_gather_object(gathered, per_rank)
    if rank != 0:  # with cpu_offload the full tensors land on rank 0 only
        everyone_or_nobody(None, world)
        return None
    root, name = out / "ckpt", f"step-{step:08d}"
    failure, path = None, None
    try:
        # Exactly the trainable parameters, by their (deduplicated) names: a head
        # tied to a frozen embedding would otherwise come along under its second name.
        missing = [n for n in trainable if n not in msd]
        if missing:
            raise RuntimeError(f"state dict lacks trainable parameters {missing[:5]}")
        msd = {n: msd[n].detach().contiguous().cpu() for n in trainable}
        otensors, orest = _flatten_optim(osd)
        meta = json.dumps(dict(state, format=CKPT_FORMAT, step=step, world_size=world, ranks=gathered, optimizer=orest))
        need = _tensor_bytes(msd) + _tensor_bytes(otensors) + len(meta) + 4096
        prev = newest_checkpoint(out)
        keeps = f"the previous checkpoint {prev} is intact" if prev else "no earlier checkpoint exists"
        with staged_dir(root / name, need, f"checkpoint {name}",
                        f"free space or move --out, then rerun with --resume ({keeps})") as tmp:
            failpoint("save.begin")
            save_file(msd, str(tmp / "model.safetensors"))
            failpoint("save.model")
            save_file(otensors, str(tmp / "optimizer.safetensors"))
            (tmp / "state.json").write_text(meta)
            sums = {"format": CKPT_FORMAT, "files": {f: sha256_file(tmp / f) for f in CKPT_FILES}}
            (tmp / CHECKSUMS).write_text(json.dumps(sums, indent=1) + "\n")
        failpoint("save.renamed")
        lt = root / f".tmp-latest-{os.getpid()}"
        lt.write_text(name + "\n")
        os.replace(lt, root / "latest")
        # Keep only the newest `keep`: the optimizer state of a big model is large.
        # Renamed out of sight first: a kill inside rmtree must not leave a half-deleted
        # checkpoint under a real name (the next run removes the hidden one).
        for d in sorted(root.glob(STEP_GLOB))[:-keep]:
            failpoint("save.prune")
            gone = root / f".tmp-prune-{d.name}-{os.getpid()}"
            os.rename(d, gone)
            shutil.rmtree(gone, ignore_errors=True)
        path = root / name
    except BaseException as e:
        failure = e
    everyone_or_nobody(failure, world)  # nobody moves on (or exits) before the checkpoint is on disk
    return path


def load_checkpoint(path: Path, model, optimizer, trainable: list[str]) -> dict:
    """Every rank reads the full files and loads them (FSDP shards them itself)."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    state = json.loads((path / "state.json").read_text())
    if state.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state.get('format')!r}, expected {CKPT_FORMAT!r}")
    msd = load_file(str(path / "model.safetensors"))
    # The file holds exactly the trainable parameters; say so ourselves (strict
    # loading would also demand the frozen ones, which come from --model).
    if set(msd) != set(trainable):
        missing, extra = sorted(set(trainable) - set(msd)), sorted(set(msd) - set(trainable))
        raise CheckpointError(f"{path}: checkpoint tensors do not match the trainable parameters "
                              f"(missing {missing[:5]}, unexpected {extra[:5]})")
    set_model_state_dict(model, msd, options=_options(strict=False))
    osd = _unflatten_optim(load_file(str(path / "optimizer.safetensors")), state["optimizer"])
    set_optimizer_state_dict(model, optimizer, osd, options=_options())
    return state
