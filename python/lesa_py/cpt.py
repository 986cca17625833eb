"""Continued pre-training (CPT) of an expanded model: ``python -m lesa_py.cpt``.

The paper's claim (method.md §2.10, §4.4) is about this phase: a LESA-initialised
model, trained on the same tokens as a baseline, converges faster. By default only
the new layers train (the paper's setting; ``lesa.json`` says which ones are new);
``--freeze none`` is the full-parameter ablation.

The file reads top to bottom like nanoGPT's train.py: arguments, a few helpers
(manifest, schedule, held-out loss, checkpoints), then `_train`, one loop that does
schedule -> eval -> checkpoint -> accumulation -> clipping -> step -> log.

Single process::

    python -m lesa_py.cpt --model expanded/ --train wiki.txt --eval heldout.txt --out runs/lesa

Data parallel (DDP; gloo on CPU, NCCL on GPU), or sharded with ``--fsdp`` (GPU)::

    torchrun --nproc_per_node 8 -m lesa_py.cpt --model ... --out ... [--fsdp]

In-process (the ``compare`` command): ``train(dict(model=..., train=..., out=...))``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import random
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from . import hub
from .data import DataError, WindowSampler, eval_windows, sha256_file, tokenize_file

CKPT_FORMAT = "lesa-cpt-ckpt/1"
MANIFEST_FORMAT = "lesa-manifest/1"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class CPTError(Exception):
    """A user error: printed as one clean line, exit status 2 (no stack trace)."""


# ----------------------------------------------------------------------------
# arguments


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lesa_py.cpt",
        description="Continued pre-training of an expanded (lesa) checkpoint.",
    )
    a = p.add_argument
    a("--model", required=True, help="HF checkpoint dir (safetensors only), normally written by `lesa expand`")
    a("--train", required=True, help="training text file (UTF-8)")
    a("--eval", default=None, help="held-out text file (optional)")
    a("--out", required=True, help="run dir: log.jsonl, ckpt/, final/")
    a("--freeze", choices=["original", "none"], default="original",
      help="original: train only the layers lesa.json lists as new (the paper's setting); none: train everything")
    a("--steps", type=int, default=1000, help="optimizer steps to train to")
    a("--decay-steps", type=int, default=None,
      help="length of the cosine schedule (default: --steps); set it to stop early on the same schedule")
    a("--seq-len", type=int, default=1024)
    a("--batch", type=int, default=4, help="micro-batch per process")
    a("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    a("--lr", type=float, default=1e-4, help="peak learning rate")
    a("--min-lr", type=float, default=1e-5, help="learning rate at the end of the cosine")
    a("--warmup", type=int, default=100, help="linear warm-up steps")
    a("--weight-decay", type=float, default=0.1, help="AdamW decay on matrices (not on norms/biases)")
    a("--grad-clip", type=float, default=1.0, help="clip the global grad norm to this (0: off)")
    a("--seed", type=int, default=0)
    a("--eval-every", type=int, default=100, help="held-out eval interval in steps (also at step 0 and the end; 0: only those)")
    a("--eval-tokens", type=int, default=1 << 18, help="evaluate on the first N tokens of --eval")
    a("--save-every", type=int, default=500, help="checkpoint interval in steps (also at the end; 0: never)")
    a("--keep", type=int, default=1, help="checkpoints kept in OUT/ckpt (the newest N)")
    a("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    a("--save-final", action="store_true", help="write an HF checkpoint + lesa.json to OUT/final/")
    a("--dtype", choices=["auto", "f32", "bf16"], default="auto",
      help="autocast dtype (weights and optimizer stay f32); auto: bf16 on CUDA with bf16 support, else f32")
    a("--device", choices=["auto", "cpu", "cuda"], default="auto")
    a("--fsdp", action="store_true", help="shard with FSDP2 (fully_shard per decoder layer, then the root); GPU only")
    a("--cache-dir", default=None, help="token cache dir (default: $LESA_CACHE_DIR or ~/.cache/lesa/tokens)")
    a("--json", action="store_true", help="print the summary as one JSON object on stdout")
    a("--quiet", action="store_true", help="no per-step progress on stderr")
    return p


def _config(args: Union[argparse.Namespace, dict]) -> argparse.Namespace:
    """Accept a parsed Namespace or a dict (keys with - or _), fill defaults, reject unknown keys."""
    parser = build_parser()
    defaults = {act.dest: act.default for act in parser._actions if act.dest != "help"}
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    given = {k.replace("-", "_"): v for k, v in given.items()}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise CPTError(f"unknown option(s): {', '.join(unknown)}")
    cfg = argparse.Namespace(**{**defaults, **given})
    for req in ("model", "train", "out"):
        if not getattr(cfg, req):
            raise CPTError(f"--{req} is required")
    checks = [
        ("steps", cfg.steps >= 1, "at least 1"),
        ("seq_len", cfg.seq_len >= 1, "at least 1"),
        ("batch", cfg.batch >= 1, "at least 1"),
        ("grad_accum", cfg.grad_accum >= 1, "at least 1"),
        ("warmup", cfg.warmup >= 0, "at least 0"),
        ("lr", cfg.lr > 0, "positive"),
        ("min_lr", 0 <= cfg.min_lr <= cfg.lr, "between 0 and --lr"),
        ("weight_decay", cfg.weight_decay >= 0, "at least 0"),
        ("grad_clip", cfg.grad_clip >= 0, "at least 0"),
        ("eval_every", cfg.eval_every >= 0, "at least 0"),
        ("eval_tokens", cfg.eval_tokens >= 1, "at least 1"),
        ("save_every", cfg.save_every >= 0, "at least 0"),
        ("keep", cfg.keep >= 1, "at least 1"),
    ]
    for name, ok, what in checks:
        if not ok:
            raise CPTError(f"expected --{name.replace('_', '-')} {what}, got {getattr(cfg, name)}")
    if cfg.decay_steps is None:
        cfg.decay_steps = cfg.steps
    if cfg.decay_steps < 1:
        raise CPTError(f"expected --decay-steps at least 1, got {cfg.decay_steps}")
    return cfg


# ----------------------------------------------------------------------------
# model directory and manifest


def check_model_dir(model_dir: Path) -> list[Path]:
    """The safetensors weight files of `model_dir`; pickle checkpoints are refused."""
    if not model_dir.is_dir():
        raise CPTError(f"--model {model_dir}: not a directory")
    if not (model_dir / "config.json").is_file():
        raise CPTError(f"--model {model_dir}: no config.json (expected an HF checkpoint dir)")
    st = sorted(model_dir.glob("*.safetensors"))
    if not st:
        pickles = sorted(p.name for p in model_dir.iterdir() if p.suffix in PICKLE_SUFFIXES)
        hint = (f" (found {', '.join(pickles)}: pickle checkpoints can run code when loaded and are "
                "refused; convert them to safetensors first)") if pickles else ""
        raise CPTError(f"--model {model_dir}: no .safetensors weights{hint}")
    return st


def load_manifest(model_dir: Path) -> Optional[dict]:
    path = model_dir / "lesa.json"
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CPTError(f"{path}: not valid JSON ({e})")
    if m.get("format") != MANIFEST_FORMAT:
        raise CPTError(f"{path}: format is {m.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    nl = m.get("new_layers")
    if not isinstance(nl, list) or not all(isinstance(i, int) and i >= 0 for i in nl):
        raise CPTError(f"{path}: new_layers must be a list of layer indices, got {nl!r}")
    if not isinstance(m.get("layer_prefix"), str):
        raise CPTError(f"{path}: layer_prefix missing")
    return m


def apply_freeze(model, freeze: str, manifest: Optional[dict], model_dir: Path) -> list[str]:
    """Set requires_grad; return the names of the trainable parameters.

    Frozen parameters get requires_grad=False (not just a zero lr): autograd then
    builds no graph for the frozen prefix of the network, AdamW keeps no state for
    them, and DDP/FSDP reduce no gradients for them.
    """
    if freeze == "none":
        for p in model.parameters():
            p.requires_grad_(True)
        return [n for n, _ in model.named_parameters()]
    if manifest is None:
        raise CPTError(
            f"--freeze original needs {model_dir / 'lesa.json'} (the manifest `lesa expand` writes) to know "
            "which layers are new; this model dir has none. Use --freeze none to train every parameter."
        )
    n_layers = model.config.num_hidden_layers
    tl = manifest.get("target_layers")
    if tl is not None and tl != n_layers:
        raise CPTError(f"lesa.json says target_layers={tl} but config.json has num_hidden_layers={n_layers}")
    new = sorted(set(manifest["new_layers"]))
    if not new:
        raise CPTError("lesa.json lists no new layers: with --freeze original nothing would train")
    bad = [i for i in new if i >= n_layers]
    if bad:
        raise CPTError(f"lesa.json new_layers {bad} out of range for a {n_layers}-layer model")
    prefixes = {i: f"{manifest['layer_prefix']}{i}." for i in new}
    names, hit = [], set()
    for name, p in model.named_parameters():
        owner = next((i for i, pre in prefixes.items() if name.startswith(pre)), None)
        p.requires_grad_(owner is not None)
        if owner is not None:
            names.append(name)
            hit.add(owner)
    missing = [prefixes[i] for i in new if i not in hit]
    if missing:
        raise CPTError(f"lesa.json new layers match no parameter of the model: {missing}")
    return names


def model_identity(model_dir: Path, weight_files: list[Path]) -> str:
    """Cheap fingerprint of the starting weights, to refuse resuming onto another model.

    The manifest already holds the sha256 of every file; without one, fall back to
    config.json plus the weight files' names and sizes.
    """
    man = model_dir / "lesa.json"
    if man.is_file():
        return "lesa.json:" + sha256_file(man)
    parts = [sha256_file(model_dir / "config.json")] + [f"{f.name}:{f.stat().st_size}" for f in weight_files]
    return "files:" + "|".join(parts)


def source_dtype(weight_files: list[Path]):
    """The dtype the checkpoint stores (final/ is written back in it)."""
    from safetensors import safe_open

    with safe_open(str(weight_files[0]), framework="pt") as f:
        keys = list(f.keys())
        return f.get_slice(keys[0]).get_dtype() if keys else "F32"


_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


# ----------------------------------------------------------------------------
# schedule, loss, held-out eval


def lr_at(it: int, cfg) -> float:
    """Learning rate for optimizer step `it` (0-based): linear warm-up, cosine to min_lr.

    A pure function of the step: the scheduler's whole state is the step counter,
    which the checkpoint stores.
    """
    if it < cfg.warmup:
        return cfg.lr * (it + 1) / (cfg.warmup + 1)
    if it >= cfg.decay_steps:
        return cfg.min_lr
    ratio = (it - cfg.warmup) / max(1, cfg.decay_steps - cfg.warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


def lm_loss(model, batch, reduction: str = "mean"):
    """Next-token cross-entropy of a [B, T+1] token batch (inputs batch[:, :-1])."""
    import torch.nn.functional as F

    logits = model(input_ids=batch[:, :-1], use_cache=False).logits
    # f32 log-softmax: bf16 cross-entropy over a 100k+ vocabulary loses precision.
    return F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction=reduction
    )


def heldout_loss(model, windows: np.ndarray, batch: int, device, autocast, rank: int = 0, world: int = 1) -> float:
    """Mean next-token loss over fixed eval windows, sharded over ranks.

    Every rank runs the same number of forwards (the shard is padded with a
    zero-weight window): under FSDP each forward is a collective, and a rank that
    ran fewer would hang the others.
    """
    import torch
    import torch.distributed as dist

    n = len(windows)
    per = -(-n // world)
    mine = [rank * per + j for j in range(per)]
    total = torch.zeros(2, dtype=torch.float64, device=device)  # [sum of losses, number of targets]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, per, batch):
            idx = mine[i : i + batch]
            weight = torch.tensor([1.0 if k < n else 0.0 for k in idx], dtype=torch.float64, device=device)
            x = torch.from_numpy(windows[[min(k, n - 1) for k in idx]]).to(device)
            with autocast():
                loss = lm_loss(model, x, reduction="none").view(x.size(0), -1)
            total[0] += (loss.double().sum(1) * weight).sum()
            total[1] += weight.sum() * loss.size(1)
    if world > 1:
        dist.all_reduce(total)
    model.train(was_training)
    return (total[0] / total[1]).item()


# ----------------------------------------------------------------------------
# checkpoints: OUT/ckpt/step-00000300/{model.safetensors, optimizer.safetensors, state.json}
# plus OUT/ckpt/latest naming the newest complete one. Each step dir is written
# under a temp name and renamed (atomic); `latest` is replaced atomically after.


def _rng_state() -> dict:
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


def _set_rng_state(st: dict) -> None:
    import torch

    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = st["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(st["torch"])), dtype=torch.uint8))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(st["cuda"])), dtype=torch.uint8))


def _jsonable(x):
    if isinstance(x, tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return x


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def latest_checkpoint(out: Path) -> Optional[Path]:
    root = out / "ckpt"
    latest = root / "latest"
    if latest.is_file():
        p = root / latest.read_text().strip()
        if (p / "state.json").is_file():
            return p
    # `latest` lost (crash between the two renames): take the newest complete dir.
    done = sorted(d for d in root.glob("step-*") if (d / "state.json").is_file())
    return done[-1] if done else None


def _ckpt_options(strict: bool = True):
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


def save_checkpoint(out: Path, step: int, model, optimizer, sampler, trainable: list[str], state: dict,
                    rank: int, world: int, keep: int = 1) -> Optional[Path]:
    """Collective: every rank calls it; rank 0 writes."""
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    opts = _ckpt_options()
    msd = get_model_state_dict(model, options=opts)
    if rank == 0:  # with cpu_offload the full tensors land on rank 0 only
        # Exactly the trainable parameters, by their (deduplicated) names: a head
        # tied to a frozen embedding would otherwise come along under its second name.
        missing = [n for n in trainable if n not in msd]
        if missing:
            raise RuntimeError(f"state dict lacks trainable parameters {missing[:5]}")
        msd = {n: msd[n] for n in trainable}
    osd = get_optimizer_state_dict(model, optimizer, options=opts)
    per_rank = {"sampler": sampler.state_dict(), "rng": _rng_state()}
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, per_rank)
    else:
        gathered = [per_rank]
    path = None
    if rank == 0:
        root = out / "ckpt"
        root.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:08d}"
        tmp = root / f".tmp-{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        save_file({k: v.detach().contiguous().cpu() for k, v in msd.items()}, str(tmp / "model.safetensors"))
        otensors, orest = _flatten_optim(osd)
        save_file(otensors, str(tmp / "optimizer.safetensors"))
        full_state = dict(state, format=CKPT_FORMAT, step=step, world_size=world, ranks=gathered, optimizer=orest)
        (tmp / "state.json").write_text(json.dumps(full_state))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
        lt = root / f".latest-{os.getpid()}"
        lt.write_text(name + "\n")
        os.replace(lt, root / "latest")
        _fsync_dir(root)
        # Keep only the newest `keep`: the optimizer state of a big model is large.
        for d in sorted(root.glob("step-*"))[:-keep]:
            shutil.rmtree(d, ignore_errors=True)
        path = final
    if world > 1:
        dist.barrier()  # nobody moves on (or exits) before the checkpoint is on disk
    return path


def load_checkpoint(path: Path, model, optimizer, trainable: list[str]) -> dict:
    """Every rank reads the full files and loads them (FSDP shards them itself)."""
    import torch
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    state = json.loads((path / "state.json").read_text())
    if state.get("format") != CKPT_FORMAT:
        raise CPTError(f"{path}: checkpoint format {state.get('format')!r}, expected {CKPT_FORMAT!r}")
    msd = load_file(str(path / "model.safetensors"))
    # The file holds exactly the trainable parameters; say so ourselves (strict
    # loading would also demand the frozen ones, which come from --model).
    if set(msd) != set(trainable):
        missing, extra = sorted(set(trainable) - set(msd)), sorted(set(msd) - set(trainable))
        raise CPTError(f"{path}: checkpoint tensors do not match the trainable parameters "
                       f"(missing {missing[:5]}, unexpected {extra[:5]})")
    set_model_state_dict(model, msd, options=_ckpt_options(strict=False))
    opts = _ckpt_options()
    osd = _unflatten_optim(load_file(str(path / "optimizer.safetensors")), state["optimizer"])
    set_optimizer_state_dict(model, optimizer, osd, options=opts)
    return state


def save_final(out: Path, model, raw, tokenizer, model_dir: Path, src_dtype: str, rank: int, world: int) -> Optional[Path]:
    """OUT/final/: save_pretrained (safetensors, in the source dtype) + tokenizer + lesa.json.

    The manifest is copied with its `files` hashes recomputed over final/, so that
    `lesa verify` still holds for the trained directory.
    """
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    path = None
    if rank == 0:
        dtype = getattr(torch, _ST_DTYPES.get(src_dtype, "float32"))
        memo: dict[int, Any] = {}  # tied tensors stay one tensor after the cast
        sd = {}
        for k, v in full.items():
            key = id(v)
            if key not in memo:
                memo[key] = v.detach().to(dtype)
            sd[k] = memo[key]
        if getattr(raw.config, "tie_word_embeddings", False):
            sd.pop("lm_head.weight", None)
        tmp = out / f".final-tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        raw.save_pretrained(tmp, state_dict=sd)
        # save_pretrained records the in-memory dtype (f32 master weights); the
        # config must name what the files hold.
        cj = json.loads((tmp / "config.json").read_text())
        cj["dtype"] = _ST_DTYPES.get(src_dtype, "float32")
        (tmp / "config.json").write_text(json.dumps(cj, indent=2, sort_keys=True) + "\n")
        tokenizer.save_pretrained(tmp)
        man = model_dir / "lesa.json"
        if man.is_file():
            m = json.loads(man.read_text())
            m["files"] = {f.name: sha256_file(f) for f in sorted(tmp.iterdir()) if f.is_file() and f.name != "lesa.json"}
            (tmp / "lesa.json").write_text(json.dumps(m, indent=2) + "\n")
        final = out / "final"
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        path = final
    if world > 1:
        dist.barrier()
    return path


# ----------------------------------------------------------------------------
# distributed setup


@dataclass
class Dist:
    rank: int
    local_rank: int
    world: int
    device: Any
    we_initialised: bool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_distributed(cfg) -> Dist:
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kind = cfg.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise CPTError("--device cuda: no CUDA device is available")
    if cfg.fsdp and kind != "cuda":
        raise CPTError("--fsdp needs CUDA GPUs (FSDP2 over NCCL); on CPU run plain or DDP (torchrun) instead")
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    we = False
    if (world > 1 or cfg.fsdp) and not dist.is_initialized():
        backend = "nccl" if kind == "cuda" else "gloo"
        if "MASTER_ADDR" in os.environ:
            dist.init_process_group(backend, device_id=device if kind == "cuda" else None)
        else:  # --fsdp in a plain single process: a one-rank group of our own
            dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1,
                                    device_id=device if kind == "cuda" else None)
        we = True
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return Dist(rank=rank, local_rank=local_rank, world=world, device=device, we_initialised=we)


# ----------------------------------------------------------------------------
# the trainer


def train(args: Union[argparse.Namespace, dict]) -> dict:
    """Run CPT; return the summary dict (same on every rank except eval values, set on all)."""
    summary, _ = _train(_config(args))
    return summary


def _train(cfg) -> tuple[dict, Any]:
    """The loop. Returns (summary, trained model) -- the model for in-process tests."""
    env = setup_distributed(cfg)
    try:
        return _train_loop(cfg, env)
    finally:
        if env.we_initialised:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train_loop(cfg, env: Dist) -> tuple[dict, Any]:
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t_start = time.time()
    rank, world, device = env.rank, env.world, env.device
    if cfg.quiet or rank != 0:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # HF's load/save bars
    master = rank == 0
    distributed = world > 1 or cfg.fsdp

    def barrier():
        if distributed:
            dist.barrier()

    def say(msg: str):
        if master and not cfg.quiet:
            print(msg, file=sys.stderr, flush=True)

    # -- inputs --------------------------------------------------------------
    try:
        model_dir = hub.local_dir(cfg.model).resolve()
    except hub.UserError as e:
        raise CPTError(f"--model: {e}") from None
    out = Path(cfg.out).resolve()
    weight_files = check_model_dir(model_dir)
    manifest = load_manifest(model_dir)
    if cfg.freeze == "original" and manifest is None:
        apply_freeze(None, "original", None, model_dir)  # raises the clear error, before any loading
    log_path = out / "log.jsonl"
    ckpt_path = latest_checkpoint(out) if out.exists() else None
    if cfg.resume and ckpt_path is None:
        raise CPTError(f"--resume: no checkpoint in {out / 'ckpt'}")
    if not cfg.resume and (log_path.exists() or (out / "ckpt").exists()):
        raise CPTError(f"{out} already holds a run (log.jsonl or ckpt/); pass --resume or choose a new --out")

    if cfg.dtype == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    else:
        bf16 = cfg.dtype == "bf16"
    if bf16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise CPTError("--dtype bf16: this GPU does not support bfloat16")
    dtype_name = "bf16" if bf16 else "f32"

    def autocast():
        # Master weights and optimizer state stay f32; matmuls run in bf16.
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)

    # -- data: tokenise once (one process per node), everyone memory-maps the cache
    cache_dir = Path(cfg.cache_dir or os.environ.get("LESA_CACHE_DIR") or Path.home() / ".cache/lesa/tokens")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    try:
        failure = None
        if env.local_rank == 0:
            try:
                train_ids, train_info = tokenize_file(tokenizer, model_dir, cfg.train, cache_dir)
                eval_ids = tokenize_file(tokenizer, model_dir, cfg.eval, cache_dir)[0] if cfg.eval else None
            except Exception as e:  # reach the barrier anyway: the other ranks must not hang
                failure = e
        barrier()
        if failure is not None:
            raise failure
        if env.local_rank != 0:
            train_ids, train_info = tokenize_file(tokenizer, model_dir, cfg.train, cache_dir, build=False)
            eval_ids = tokenize_file(tokenizer, model_dir, cfg.eval, cache_dir, build=False)[0] if cfg.eval else None
        sampler = WindowSampler(train_ids, cfg.seq_len, cfg.batch, cfg.seed, rank)
        windows = eval_windows(eval_ids, cfg.seq_len, cfg.eval_tokens) if cfg.eval else None
    except DataError as e:
        raise CPTError(str(e))

    # Seeds: nothing below draws from these by default (no dropout in Llama), but
    # a model with dropout must not give every rank the same mask.
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    torch.manual_seed(cfg.seed + rank)

    # -- model ----------------------------------------------------------------
    # Loaded in f32 whatever the checkpoint stores: AdamW updates of 1e-5 relative
    # size vanish in bf16 weights. use_safetensors=True: never unpickle.
    raw = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, use_safetensors=True)
    trainable = apply_freeze(raw, cfg.freeze, manifest, model_dir)
    n_total = sum(p.numel() for p in raw.parameters())
    n_train = sum(p.numel() for p in raw.parameters() if p.requires_grad)
    src_dtype = source_dtype(weight_files)
    raw.train()

    if cfg.fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
        raw.to(device)
        # One FSDP unit per decoder layer (all-gathered just before it runs, freed
        # after), then the root for embeddings, final norm and lm_head.
        for layer in raw.model.layers:
            fully_shard(layer, mp_policy=mp)
        fully_shard(raw, mp_policy=mp)
        model = raw
    elif world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        raw.to(device)
        # Frozen params have requires_grad=False, so DDP neither buckets nor
        # all-reduces them; every trainable param is used in each forward, so
        # find_unused_parameters=False (no extra graph traversal per step).
        model = DDP(raw, device_ids=[device.index] if device.type == "cuda" else None,
                    find_unused_parameters=False)
    else:
        raw.to(device)
        model = raw

    # -- optimizer ------------------------------------------------------------
    # Weight decay on matrices only; norms and biases are not decayed (nanoGPT).
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8,
    )

    # What must match for a resume to continue the same trajectory.
    identity = {
        "model": model_identity(model_dir, weight_files),
        "train_sha256": train_info["sha256"],
        "tokenizer": train_info["tokenizer"],
        "freeze": cfg.freeze, "seq_len": cfg.seq_len, "batch": cfg.batch, "grad_accum": cfg.grad_accum,
        "lr": cfg.lr, "min_lr": cfg.min_lr, "warmup": cfg.warmup, "decay_steps": cfg.decay_steps,
        "weight_decay": cfg.weight_decay, "grad_clip": cfg.grad_clip, "seed": cfg.seed,
        "dtype": dtype_name, "world_size": world, "fsdp": bool(cfg.fsdp),
    }

    # -- resume ---------------------------------------------------------------
    step, tokens_done, elapsed_before = 0, 0, 0.0
    if cfg.resume:
        state = load_checkpoint(ckpt_path, model, optimizer, trainable)
        diff = {k: (state["identity"].get(k), v) for k, v in identity.items() if state["identity"].get(k) != v}
        if diff:
            what = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise CPTError(f"--resume: {ckpt_path} was made with different settings ({what})")
        step, tokens_done, elapsed_before = state["step"], state["tokens"], state["elapsed"]
        mine = state["ranks"][rank]
        sampler.load_state_dict(mine["sampler"])
        _set_rng_state(mine["rng"])
        if master and log_path.exists():
            # Drop rows written after the checkpoint (a crash after it); eval rows
            # at the checkpoint's step are recomputed below.
            rows = [json.loads(l) for l in log_path.read_text().splitlines() if l.strip()]
            keep = [r for r in rows if r["step"] < step or (r["step"] == step and "loss" in r)]
            log_path.write_text("".join(json.dumps(r) + "\n" for r in keep))
        say(f"resumed from {ckpt_path} at step {step}")
    start_step = step

    if master:
        out.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "a", buffering=1)
        (out / "args.json").write_text(json.dumps(vars(cfg), indent=2, default=str) + "\n")
    else:
        log = None

    def log_row(row: dict):
        if log is not None:
            log.write(json.dumps(row) + "\n")

    tokens_per_step = cfg.batch * cfg.seq_len * cfg.grad_accum * world
    say(f"cpt: {n_train:,}/{n_total:,} params trainable (--freeze {cfg.freeze}), {world} process(es) on "
        f"{device.type}, {dtype_name}, {tokens_per_step:,} tokens/step, {cfg.steps} steps")
    ddp = world > 1 and not cfg.fsdp
    last_loss, last_eval = None, None
    t0 = time.time()

    # -- the loop ------------------------------------------------------------
    try:
        while True:
            # Held-out eval at step 0, every --eval-every steps and at the end.
            if windows is not None and (step == 0 or step == cfg.steps or (cfg.eval_every and step % cfg.eval_every == 0)):
                el = heldout_loss(model, windows, cfg.batch, device, autocast, rank, world)
                last_eval = el
                log_row({"step": step, "eval_loss": el, "eval_ppl": math.exp(min(el, 700.0))})
                say(f"step {step}: eval loss {el:.4f}, ppl {math.exp(min(el, 700.0)):.3f}")

            # Checkpoint every --save-every steps and at the end (not the step we resumed at).
            if cfg.save_every and step > start_step and (step % cfg.save_every == 0 or step == cfg.steps):
                save_checkpoint(out, step, model, optimizer, sampler, trainable,
                                {"identity": identity, "tokens": tokens_done,
                                 "elapsed": elapsed_before + time.time() - t0}, rank, world, cfg.keep)

            if step >= cfg.steps:
                break

            # The schedule is a function of the step; set it on every group.
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr

            # Gradient accumulation: the gradients of grad_accum micro-batches sum
            # into .grad; each loss is divided so the sum is the mean.
            loss_sum = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                last_micro = micro == cfg.grad_accum - 1
                # Reduce gradients across ranks only on the last micro-batch.
                if ddp and not last_micro:
                    sync = model.no_sync()
                else:
                    sync = contextlib.nullcontext()
                if cfg.fsdp:
                    model.set_requires_gradient_sync(last_micro)
                x = torch.from_numpy(sampler.next_batch()).to(device, non_blocking=True)
                with sync:
                    with autocast():
                        loss = lm_loss(model, x)
                    (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach()

            # Clip the global norm (over all ranks' shards under FSDP).
            grad_norm = None
            if cfg.grad_clip > 0:
                gn = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                grad_norm = gn.full_tensor() if hasattr(gn, "full_tensor") else gn
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)  # frees the grads' memory until the next backward
            step += 1
            tokens_done += tokens_per_step

            # Logged loss: mean over micro-batches and ranks. The .item() below is a
            # CPU-GPU sync point, once per step (cheap next to the step itself).
            loss_avg = loss_sum / cfg.grad_accum
            if world > 1:
                dist.all_reduce(loss_avg)
                loss_avg = loss_avg / world
            last_loss = loss_avg.item()
            elapsed = elapsed_before + time.time() - t0
            row = {"step": step, "loss": last_loss, "lr": lr, "tokens": tokens_done, "elapsed": round(elapsed, 3)}
            if grad_norm is not None:
                row["grad_norm"] = grad_norm.item()
            log_row(row)
            say(f"step {step}/{cfg.steps}: loss {last_loss:.4f}, lr {lr:.3e}, {tokens_done:,} tokens, "
                f"{tokens_per_step * (step - start_step) / max(1e-9, time.time() - t0):,.0f} tok/s")
    finally:
        if log is not None:
            log.close()

    final_path = None
    if cfg.save_final:
        final_path = save_final(out, model, raw, tokenizer, model_dir, src_dtype, rank, world)

    summary = {
        "out": str(out),
        "log": str(log_path),
        "steps": step,
        "start_step": start_step,
        "tokens": tokens_done,
        "final_loss": last_loss,
        "final_eval_loss": last_eval,
        "final_eval_ppl": math.exp(min(last_eval, 700.0)) if last_eval is not None else None,
        "trainable_params": n_train,
        "total_params": n_total,
        "freeze": cfg.freeze,
        "world_size": world,
        "device": device.type,
        "dtype": dtype_name,
        "fsdp": bool(cfg.fsdp),
        "checkpoint": str(latest_checkpoint(out)) if cfg.save_every and latest_checkpoint(out) else None,
        "final": str(final_path) if final_path else (str(out / "final") if cfg.save_final else None),
        "elapsed": round(elapsed_before + time.time() - t0, 3),
        "wall": round(time.time() - t_start, 3),
    }
    if master:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, raw


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = train(args)
    except CPTError as e:
        print(f"lesa cpt: error: {e}", file=sys.stderr)
        return 2
    if args.json and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
