"""Continued pre-training (CPT) of an expanded model: ``python -m lesa_py.cpt``.

The paper's claim (method.md §2.10, §4.4) is about this phase: a LESA-initialised
model, trained on the same tokens as a baseline, converges faster. By default only
the new layers train (the paper's setting; ``lesa.json`` says which ones are new);
``--freeze none`` is the full-parameter ablation.

The file reads top to bottom like nanoGPT's train.py: arguments, a few helpers
(manifest, schedule, held-out loss, checkpoints), set-up functions (`setup`: run dir,
data, model, optimizer; `resume`), then `_train_loop`, one screen that does
eval -> checkpoint -> schedule -> accumulation -> clipping -> step -> log.

Single process::

    python -m lesa_py.cpt --model expanded/ --train wiki.txt --eval heldout.txt --out runs/lesa

Data parallel (DDP; gloo on CPU, NCCL on GPU), or sharded with ``--fsdp`` (GPU)::

    torchrun --nproc_per_node 8 -m lesa_py.cpt --model ... --out ... [--fsdp]

In-process (the ``compare`` command): ``train(dict(model=..., train=..., out=...))``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from . import __version__, hub
from .checkpoint import MANIFEST_FORMAT, read_manifest, weight_files
from .checkpoints import (CheckpointError, everyone_or_nobody, failpoint, find_checkpoint, load_checkpoint,
                          newest_checkpoint, remove_partial, save_checkpoint, set_rng_state, staged_dir)
from .data import DataError, WindowSampler, eval_windows, sha256_file, tokenize_corpus
from .lm import decoder_layers, depth, load_lm
from .errors import CommandParser, UserError, fail

# cpt's user errors are the package's (lesa_py.errors): printed as one line, exit status 2.
CPTError = UserError

COMMAND = "lesa train"  # how the user runs this module (src/cli/python.ts)


# ----------------------------------------------------------------------------
# arguments


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog=COMMAND,
        description="Continued pre-training of an expanded (lesa) checkpoint.",
    )
    a = p.add_argument
    a("--model", required=True, help="HF checkpoint dir (safetensors only), normally written by `lesa expand`")
    a("--train", required=True, help="training data: a UTF-8 text file, a directory of .txt/.jsonl/.parquet files, "
      "a .jsonl or .parquet file, or a datasets save_to_disk directory (documents get the model's BOS/EOS)")
    a("--eval", default=None, help="held-out data, same forms as --train (optional)")
    a("--text-field", default="text", help="the text field of JSONL rows / column of Parquet and Arrow data")
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
    a("--resume", nargs="?", const=True, default=False, type=_resume_mode, metavar="auto",
      help="continue from the newest complete checkpoint in --out (refused if there is none); "
           "--resume auto: the same, or start from step 0 when no checkpoint was written yet "
           "(one idempotent command for job schedulers and torchrun --max-restarts)")
    a("--save-final", action="store_true", help="write an HF checkpoint + lesa.json to OUT/final/")
    a("--dtype", choices=["auto", "f32", "bf16"], default="auto",
      help="autocast dtype (weights and optimizer stay f32); auto: bf16 on CUDA with bf16 support, else f32")
    a("--device", choices=["auto", "cpu", "cuda"], default="auto")
    a("--fsdp", action="store_true", help="shard with FSDP2 (fully_shard per decoder layer, then the root); GPU only")
    a("--cache-dir", default=None, help="token cache dir (default: $LESA_CACHE_DIR or ~/.cache/lesa/tokens)")
    a("--json", action="store_true", help="print the summary as one JSON object on stdout")
    a("--quiet", action="store_true", help="no per-step progress on stderr")
    return p


def _resume_mode(v: str):
    if v != "auto":
        raise argparse.ArgumentTypeError(f"expected no value or 'auto', got {v!r}")
    return v


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
    if cfg.resume not in (False, True, "auto"):
        raise CPTError(f"expected --resume with no value or 'auto', got {cfg.resume!r}")
    if cfg.decay_steps is None:
        cfg.decay_steps = cfg.steps
    if cfg.decay_steps < 1:
        raise CPTError(f"expected --decay-steps at least 1, got {cfg.decay_steps}")
    return cfg


# ----------------------------------------------------------------------------
# model directory and manifest


def check_model_dir(model_dir: Path) -> list[Path]:
    """The safetensors weight files of `model_dir`; pickle checkpoints are refused."""
    return weight_files(model_dir, "--model")


def load_manifest(model_dir: Path) -> Optional[dict]:
    return read_manifest(model_dir)


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
    n_layers = depth(model)
    tl = manifest.get("target_layers")
    if tl is not None and tl != n_layers:
        raise CPTError(f"lesa.json says target_layers={tl} but config.json has num_hidden_layers={n_layers}")
    new = sorted(set(manifest["new_layers"]))
    if not new:
        raise CPTError("lesa.json lists no new layers: with --freeze original nothing would train")
    bad = [i for i in new if i >= n_layers]
    if bad:
        raise CPTError(f"lesa.json new_layers {bad} out of range for a {n_layers}-layer model")
    # By module, not by name: a wrapper's parameter names (model.language_model.layers.N)
    # are not its files' (language_model.model.layers.N, the manifest's layer_prefix).
    layers = decoder_layers(model)
    owner_of = {id(p): i for i in new for p in layers[i].parameters()}
    names, hit = [], set()
    for name, p in model.named_parameters():
        owner = owner_of.get(id(p))
        p.requires_grad_(owner is not None)
        if owner is not None:
            names.append(name)
            hit.add(owner)
    missing = [i for i in new if i not in hit]
    if missing:
        raise CPTError(f"lesa.json new layers {missing} have no parameters in the model")
    return names


def model_identity(model_dir: Path, weight_files: list[Path]) -> str:
    """Cheap fingerprint of the starting weights, to refuse resuming onto another model.

    The manifest already holds the sha256 of every file; without one, fall back to
    config.json plus the weight files' names, sizes and safetensors headers.
    """
    import hashlib

    man = model_dir / "lesa.json"
    if man.is_file():
        return "lesa.json:" + sha256_file(man)
    parts = [sha256_file(model_dir / "config.json")]
    for f in weight_files:
        with open(f, "rb") as fh:
            head = fh.read(8)
            head += fh.read(int.from_bytes(head, "little") if len(head) == 8 else 0)
        parts.append(f"{f.name}:{f.stat().st_size}:{hashlib.sha256(head).hexdigest()}")
    return "files:" + "|".join(parts)


def source_dtype(weight_files: list[Path]):
    """The dtype the checkpoint stores (final/ is written back in it)."""
    from safetensors import safe_open

    with safe_open(str(weight_files[0]), framework="pt") as f:
        keys = list(f.keys())
        return f.get_slice(keys[0]).get_dtype() if keys else "F32"


def data_summary(info: Optional[dict]) -> Optional[dict]:
    """What the summary records of one input: size, documents, rows skipped and why."""
    keys = ("path", "sha256", "tokens", "documents", "skipped", "ignored_files", "bos", "eos", "text_field")
    return {k: info[k] for k in keys} if info else None


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
            failpoint("eval")
            total[1] += weight.sum() * loss.size(1)
    if world > 1:
        dist.all_reduce(total)
    model.train(was_training)
    return (total[0] / total[1]).item()


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
    except CheckpointError as e:
        raise CPTError(str(e)) from None
    finally:
        if env.we_initialised:
            import torch.distributed as dist

            dist.destroy_process_group()


@dataclass
class Run:
    """Everything set-up hands the loop: the inputs, the wrapped model and its optimizer."""
    cfg: Any
    env: Dist
    out: Path
    model_dir: Path
    manifest: Optional[dict]
    weight_files: list
    tokenizer: Any
    sampler: WindowSampler
    windows: Optional[np.ndarray]
    train_info: dict
    raw: Any = None  # the bare HF model (final/ is saved from its config)
    model: Any = None  # raw wrapped by DDP/FSDP, or raw itself
    optimizer: Any = None
    params: list = None
    trainable: list = None
    n_train: int = 0
    n_total: int = 0
    bf16: bool = False

    @property
    def master(self) -> bool:
        return self.env.rank == 0

    def say(self, msg: str):
        if self.master and not self.cfg.quiet:
            print(msg, file=sys.stderr, flush=True)

    def barrier(self):
        if self.env.world > 1 or self.cfg.fsdp:
            import torch.distributed as dist

            dist.barrier()

    def autocast(self):
        import torch

        # Master weights and optimizer state stay f32; matmuls run in bf16.
        return torch.autocast(device_type=self.env.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @property
    def dtype_name(self) -> str:
        return "bf16" if self.bf16 else "f32"


def check_run_dir(cfg, env: Dist, model_dir: Path, manifest: Optional[dict]) -> tuple[Path, Optional[Path]]:
    """(out, checkpoint to resume from); refuses what cannot work before any loading.

    Rank 0 removes what a killed run left half-written and picks the newest
    checkpoint whose files match their sha256; the other ranks get its choice.
    """
    if cfg.freeze == "original" and manifest is None:
        apply_freeze(None, "original", None, model_dir)  # raises the clear error
    out = Path(cfg.out).resolve()
    has_run = (out / "log.jsonl").exists() or (out / "ckpt").exists()
    if not cfg.resume and has_run:
        raise CPTError(f"{out} already holds a run (log.jsonl or ckpt/); pass --resume (or --resume auto) "
                       "or choose a new --out")
    choice: list = [None, None]  # [checkpoint, error]
    if env.rank == 0 and cfg.resume:
        remove_partial(out)
        ckpt, refused = find_checkpoint(out)
        for line in refused:
            print(f"{COMMAND}: {line}" + (f"; using {ckpt.name}" if ckpt else ""), file=sys.stderr, flush=True)
        if ckpt is None and (cfg.resume is True or refused):
            # auto starts over only when nothing was ever saved: a corrupt checkpoint needs a person.
            choice[1] = (f"--resume: no complete checkpoint in {out / 'ckpt'}" if refused else
                         f"--resume: no checkpoint in {out / 'ckpt'} (--resume auto starts from step 0 then)")
        choice[0] = str(ckpt) if ckpt else None
        if ckpt is None and choice[1] is None and has_run:
            print(f"{COMMAND}: --resume auto: no checkpoint in {out / 'ckpt'} yet; starting from step 0",
                  file=sys.stderr, flush=True)
            (out / "log.jsonl").unlink(missing_ok=True)
    if env.world > 1 or cfg.fsdp:
        import torch.distributed as dist

        dist.broadcast_object_list(choice, src=0)
    if choice[1]:
        raise CPTError(choice[1])
    return out, Path(choice[0]) if choice[0] else None


def use_bf16(cfg, device) -> bool:
    import torch

    if cfg.dtype == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    if cfg.dtype == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise CPTError("--dtype bf16: this GPU does not support bfloat16")
    return cfg.dtype == "bf16"


def load_data(cfg, env: Dist, model_dir: Path):
    """(tokenizer, train sampler, eval windows, train data info + eval_sha256).

    One process per node tokenises and writes the cache; the others wait at the
    barrier and memory-map it.
    """
    from transformers import AutoTokenizer

    cache_dir = Path(cfg.cache_dir or os.environ.get("LESA_CACHE_DIR") or Path.home() / ".cache/lesa/tokens")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    def tokens(build: bool):
        train_ids, info = tokenize_corpus(tokenizer, model_dir, cfg.train, cache_dir, text_field=cfg.text_field, build=build)
        eval_ids, eval_info = (tokenize_corpus(tokenizer, model_dir, cfg.eval, cache_dir, text_field=cfg.text_field,
                                               build=build) if cfg.eval else (None, None))
        return train_ids, eval_ids, dict(info, eval_sha256=eval_info["sha256"] if eval_info else None, eval_info=eval_info)

    try:
        failure = None
        if env.local_rank == 0:
            try:
                train_ids, eval_ids, info = tokens(build=True)
            except Exception as e:  # reach the barrier anyway: the other ranks must not hang
                failure = e
        if env.world > 1 or cfg.fsdp:
            import torch.distributed as dist

            dist.barrier()
        if failure is not None:
            raise failure
        if env.local_rank != 0:
            train_ids, eval_ids, info = tokens(build=False)
        # Every window starts with BOS where the tokenizer adds one (data.conventions).
        sampler = WindowSampler(train_ids, cfg.seq_len, cfg.batch, cfg.seed, env.rank, bos=info["bos"], eos=info["eos"])
        eval_info = info["eval_info"]
        windows = (eval_windows(eval_ids, cfg.seq_len, cfg.eval_tokens, bos=eval_info["bos"], eos=eval_info["eos"])
                   if cfg.eval else None)
    except DataError as e:
        raise CPTError(str(e))
    for flag, i in (("--train", info), ("--eval", info["eval_info"])):
        if env.rank == 0 and i and i["skipped_note"]:  # printed even with --quiet: data was left out
            print(f"lesa train: {flag} {i['path']}: {i['skipped_note']}", file=sys.stderr, flush=True)
    return tokenizer, sampler, windows, info


def seed_everything(seed: int, rank: int) -> None:
    import torch

    # Nothing draws from these by default (no dropout in Llama), but a model with
    # dropout must not give every rank the same mask.
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)


def build_model(run: Run) -> None:
    """Load the model in f32, freeze, wrap it for DDP/FSDP; sets run.raw/model/trainable."""
    import torch
    cfg, device = run.cfg, run.env.device
    # f32 whatever the checkpoint stores: AdamW updates of 1e-5 relative size
    # vanish in bf16 weights. use_safetensors=True (load_lm): never unpickle.
    raw = load_lm(run.model_dir, dtype=torch.float32)
    run.trainable = apply_freeze(raw, cfg.freeze, run.manifest, run.model_dir)
    run.n_total = sum(p.numel() for p in raw.parameters())
    run.n_train = sum(p.numel() for p in raw.parameters() if p.requires_grad)
    raw.train()
    raw.to(device)
    if cfg.fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if run.bf16 else None, reduce_dtype=torch.float32)
        # One FSDP unit per decoder layer (all-gathered just before it runs, freed
        # after), then the root for embeddings, final norm and lm_head.
        for layer in decoder_layers(raw):
            fully_shard(layer, mp_policy=mp)
        fully_shard(raw, mp_policy=mp)
        model = raw
    elif run.env.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # Frozen params have requires_grad=False, so DDP neither buckets nor
        # all-reduces them; every trainable param is used in each forward, so
        # find_unused_parameters=False (no extra graph traversal per step).
        model = DDP(raw, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False)
    else:
        model = raw
    run.raw, run.model = raw, model


def build_optimizer(run: Run) -> None:
    import torch

    cfg = run.cfg
    run.params = [p for p in run.model.parameters() if p.requires_grad]
    # Weight decay on matrices only; norms and biases are not decayed (nanoGPT).
    decay = [p for p in run.params if p.dim() >= 2]
    no_decay = [p for p in run.params if p.dim() < 2]
    run.optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8,
    )


def run_identity(run: Run) -> dict:
    """What must match for a resume to continue the same trajectory."""
    cfg = run.cfg
    return {
        "model": model_identity(run.model_dir, run.weight_files),
        "train_sha256": run.train_info["sha256"],
        "eval_sha256": run.train_info["eval_sha256"],
        "tokenizer": run.train_info["tokenizer"],
        "freeze": cfg.freeze, "seq_len": cfg.seq_len, "batch": cfg.batch, "grad_accum": cfg.grad_accum,
        "lr": cfg.lr, "min_lr": cfg.min_lr, "warmup": cfg.warmup, "decay_steps": cfg.decay_steps,
        "weight_decay": cfg.weight_decay, "grad_clip": cfg.grad_clip, "seed": cfg.seed,
        "dtype": run.dtype_name, "world_size": run.env.world, "fsdp": bool(cfg.fsdp),
    }


def resume(run: Run, ckpt_path: Path, identity: dict) -> tuple[int, int, float]:
    """Load the checkpoint into the model, optimizer, sampler and RNGs; (step, tokens, elapsed)."""
    state = load_checkpoint(ckpt_path, run.model, run.optimizer, run.trainable)
    diff = {k: (state["identity"].get(k), v) for k, v in identity.items() if state["identity"].get(k) != v}
    if diff:
        what = "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise CPTError(f"--resume: {ckpt_path} was made with different settings, model or data ({what}); "
                       "rerun with the original ones or choose a new --out")
    mine = state["ranks"][run.env.rank]
    run.sampler.load_state_dict(mine["sampler"])
    set_rng_state(mine["rng"])
    if run.master:
        truncate_log(run.out / "log.jsonl", state["step"])
    if run.master:  # even with --quiet: a job log must say where the run continued
        print(f"{COMMAND}: resumed from {ckpt_path} at step {state['step']}", file=sys.stderr, flush=True)
    return state["step"], state["tokens"], state["elapsed"]


def truncate_log(log_path: Path, step: int) -> None:
    """Drop the rows written after the checkpoint at `step` (the loop recomputes them, and
    the eval row at `step`); a last line cut by a kill is dropped too. Atomic."""
    if not log_path.exists():
        return
    rows = []
    for line in log_path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    keep = [r for r in rows if r["step"] < step or (r["step"] == step and "loss" in r)]
    tmp = log_path.with_name(f".tmp-log-{os.getpid()}")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
    os.replace(tmp, log_path)


def open_log(run: Run):
    """Rank 0's line-buffered log.jsonl (None on the other ranks); args.json beside it."""
    if not run.master:
        return None
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / "args.json").write_text(json.dumps(vars(run.cfg), indent=2, default=str) + "\n")
    return open(run.out / "log.jsonl", "a", buffering=1)


def training_record(run: Run, identity: dict, step: int, tokens: int) -> dict:
    """What lesa.json of OUT/final says about the training run."""
    n = depth(run.raw)
    layers = sorted(set(run.manifest["new_layers"])) if run.cfg.freeze == "original" else list(range(n))
    return {"tool": "lesa_py.cpt", "steps": step, "tokens": tokens, "trained_layers": layers,
            "trained_other": run.cfg.freeze == "none",  # embeddings, final norm, head
            "trainable_params": run.n_train, "total_params": run.n_total,
            # fingerprints: sha256 over the data's files, names and text field (corpus.Corpus.fingerprint)
            "train": {"path": str(Path(run.cfg.train).resolve()), "fingerprint": run.train_info["sha256"],
                      "tokens": run.train_info["tokens"]},
            "eval_fingerprint": run.train_info["eval_sha256"], "tokenizer": run.train_info["tokenizer"],
            "started_from": identity["model"],
            "settings": {k: v for k, v in identity.items() if k not in ("model", "train_sha256", "eval_sha256", "tokenizer")}}


def files_layer_prefix(final: Path, n: int) -> str:
    """The name prefix of the n decoder layers in the safetensors files of `final` (a wrapper's
    files name them as its checkpoint format does, not as the in-memory modules do)."""
    import re

    from safetensors import safe_open

    found: dict[str, set] = {}
    for f in sorted(final.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                if mt := re.match(r"^(.+\.)(\d+)\.", name):
                    found.setdefault(mt.group(1), set()).add(int(mt.group(2)))
    return next((p for p, ix in found.items() if ix == set(range(n))), "model.layers.")


def final_manifest(run: Run, final: Path, files: dict, training: dict) -> dict:
    """lesa.json of OUT/final (written in `final`): the input's manifest (or one describing an
    unexpanded model) with `files` recomputed over final/ and a `training` record added."""
    import time as _time

    if run.manifest is not None:
        m = dict(run.manifest)
    else:
        n = depth(run.raw)
        prefix = files_layer_prefix(final, n)
        m = {"format": MANIFEST_FORMAT, "lesa_version": __version__,
             "created": _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime()), "method": "none", "options": {},
             "source": {"dir": str(run.model_dir)}, "source_layers": n, "target_layers": n, "layer_prefix": prefix,
             "layers": [{"out": i, "kind": "original", "source": i, "how": f"original {i}"} for i in range(n)],
             "new_layers": []}
    m["training"] = training
    m["files"] = files
    return m


def save_final(run: Run, training: dict) -> Optional[Path]:
    """OUT/final/: save_pretrained (safetensors, in the source dtype) + tokenizer + lesa.json.

    lesa.json lists the sha256 of every file of final/ (so `lesa verify` holds for
    the trained directory) and records the training run. Collective; rank 0 writes.
    """
    import torch
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(run.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not run.master:
        everyone_or_nobody(None, run.env.world)
        return None
    failure, final = None, run.out / "final"
    try:
        src_dtype = _ST_DTYPES.get(source_dtype(run.weight_files), "float32")
        dtype = getattr(torch, src_dtype)
        memo: dict[int, Any] = {}  # tied tensors stay one tensor after the cast
        sd = {}
        for k, v in full.items():
            if id(v) not in memo:
                memo[id(v)] = v.detach().to(dtype)
            sd[k] = memo[id(v)]
        if getattr(run.raw.config, "tie_word_embeddings", False):
            sd.pop("lm_head.weight", None)
        need = sum(t.numel() * t.element_size() for t in memo.values()) + (64 << 20)  # + tokenizer, config
        with staged_dir(final, need, "the final model", "free space or move --out, then rerun the same command "
                        "with --resume (the last checkpoint is intact)") as tmp:
            run.raw.save_pretrained(tmp, state_dict=sd)
            # save_pretrained records the in-memory dtype (f32 master weights); the
            # config must name what the files hold.
            cj = json.loads((tmp / "config.json").read_text())
            cj["dtype"] = src_dtype
            (tmp / "config.json").write_text(json.dumps(cj, indent=2, sort_keys=True) + "\n")
            run.tokenizer.save_pretrained(tmp)
            files = {str(f.relative_to(tmp)): sha256_file(f) for f in sorted(tmp.rglob("*")) if f.is_file()}
            (tmp / "lesa.json").write_text(json.dumps(final_manifest(run, tmp, files, training), indent=2) + "\n")
    except BaseException as e:
        failure = e
    everyone_or_nobody(failure, run.env.world)
    return final


def setup(cfg, env: Dist) -> tuple[Run, Optional[Path]]:
    """Check the inputs, tokenise, load and wrap the model, build the optimizer."""
    if cfg.quiet or env.rank != 0:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # HF's load/save bars
    try:
        model_dir = hub.local_dir(cfg.model).resolve()  # a directory, or a hub id resolved to its snapshot
    except hub.UserError as e:
        raise CPTError(f"--model: {e}") from None
    weight_files = check_model_dir(model_dir)
    manifest = load_manifest(model_dir)
    out, ckpt_path = check_run_dir(cfg, env, model_dir, manifest)
    bf16 = use_bf16(cfg, env.device)
    tokenizer, sampler, windows, train_info = load_data(cfg, env, model_dir)
    seed_everything(cfg.seed, env.rank)
    run = Run(cfg=cfg, env=env, out=out, model_dir=model_dir, manifest=manifest, weight_files=weight_files,
              tokenizer=tokenizer, sampler=sampler, windows=windows, train_info=train_info, bf16=bf16)
    build_model(run)
    build_optimizer(run)
    return run, ckpt_path


def micro_steps(run: Run):
    """(micro-batch, gradient-sync context) for each of the --grad-accum micro-batches of one step."""
    import torch

    cfg, ddp = run.cfg, run.env.world > 1 and not run.cfg.fsdp
    for micro in range(cfg.grad_accum):
        last = micro == cfg.grad_accum - 1
        # Reduce gradients across ranks only on the last micro-batch.
        if cfg.fsdp:
            run.model.set_requires_gradient_sync(last)
        sync = run.model.no_sync() if ddp and not last else contextlib.nullcontext()
        yield torch.from_numpy(run.sampler.next_batch()).to(run.env.device, non_blocking=True), sync


def _train_loop(cfg, env: Dist) -> tuple[dict, Any]:
    import torch
    import torch.distributed as dist

    t_start = time.time()
    run, ckpt_path = setup(cfg, env)
    world, model, optimizer = env.world, run.model, run.optimizer
    identity = run_identity(run)
    step, tokens_done, elapsed_before = resume(run, ckpt_path, identity) if ckpt_path else (0, 0, 0.0)
    start_step, log = step, open_log(run)
    tokens_per_step = cfg.batch * cfg.seq_len * cfg.grad_accum * world
    n_train, n_total = run.n_train, run.n_total
    run.say(f"cpt: {n_train:,}/{n_total:,} params trainable (--freeze {cfg.freeze}), {world} process(es) on "
            f"{env.device.type}, {run.dtype_name}, {tokens_per_step:,} tokens/step, {cfg.steps} steps")
    last_loss, last_eval, t0 = None, None, time.time()
    try:
        while True:
            if run.windows is not None and (step in (0, cfg.steps) or (cfg.eval_every and step % cfg.eval_every == 0)):
                last_eval = heldout_loss(model, run.windows, cfg.batch, env.device, run.autocast, env.rank, world)
                ppl = math.exp(min(last_eval, 700.0))
                if log:
                    log.write(json.dumps({"step": step, "eval_loss": last_eval, "eval_ppl": ppl}) + "\n")
                run.say(f"step {step}: eval loss {last_eval:.4f}, ppl {ppl:.3f}")
            # Not at the step we resumed at: that checkpoint exists.
            if cfg.save_every and step > start_step and (step % cfg.save_every == 0 or step == cfg.steps):
                save_checkpoint(run.out, step, model, optimizer, run.sampler, run.trainable,
                                {"identity": identity, "tokens": tokens_done,
                                 "elapsed": elapsed_before + time.time() - t0}, env.rank, world, cfg.keep)
            if step >= cfg.steps:
                break

            # The schedule is a pure function of the step: nothing else to checkpoint.
            lr = lr_at(step, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            loss_sum = torch.zeros((), device=env.device)
            for x, sync in micro_steps(run):
                with sync:
                    with run.autocast():
                        loss = lm_loss(model, x)
                    (loss / cfg.grad_accum).backward()  # the summed gradients are the mean's
                loss_sum += loss.detach()
            grad_norm = None
            if cfg.grad_clip > 0:  # the global norm: over all ranks' shards under FSDP
                grad_norm = torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
                grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)  # frees the grads' memory until the next backward
            failpoint("step")
            step += 1
            tokens_done += tokens_per_step

            loss_avg = loss_sum / cfg.grad_accum
            if world > 1:
                dist.all_reduce(loss_avg)
                loss_avg = loss_avg / world
            last_loss = loss_avg.item()  # one CPU-GPU sync per step
            row = {"step": step, "loss": last_loss, "lr": lr, "tokens": tokens_done,
                   "elapsed": round(elapsed_before + time.time() - t0, 3)}
            if grad_norm is not None:
                row["grad_norm"] = grad_norm.item()
            if log:
                log.write(json.dumps(row) + "\n")
            run.say(f"step {step}/{cfg.steps}: loss {last_loss:.4f}, lr {lr:.3e}, {tokens_done:,} tokens, "
                    f"{tokens_per_step * (step - start_step) / max(1e-9, time.time() - t0):,.0f} tok/s")
    finally:
        if log:
            log.close()

    final_path = save_final(run, training_record(run, identity, step, tokens_done)) if cfg.save_final else None
    summary = {
        "out": str(run.out), "log": str(run.out / "log.jsonl"), "steps": step, "start_step": start_step,
        "tokens": tokens_done, "final_loss": last_loss, "final_eval_loss": last_eval,
        "final_eval_ppl": math.exp(min(last_eval, 700.0)) if last_eval is not None else None,
        "trainable_params": n_train, "total_params": n_total, "freeze": cfg.freeze, "world_size": world,
        "device": env.device.type, "dtype": run.dtype_name, "fsdp": bool(cfg.fsdp),
        "train_data": data_summary(run.train_info), "eval_data": data_summary(run.train_info["eval_info"]),
        "checkpoint": str(newest_checkpoint(run.out)) if cfg.save_every and newest_checkpoint(run.out) else None,
        "final": str(final_path) if final_path else (str(run.out / "final") if cfg.save_final else None),
        "elapsed": round(elapsed_before + time.time() - t0, 3), "wall": round(time.time() - t_start, 3),
    }
    if run.master:
        tmp = run.out / f".tmp-summary-{os.getpid()}"
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(tmp, run.out / "summary.json")
    return summary, run.raw


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = train(args)
    except CPTError as e:
        return fail(COMMAND, e)
    if args.json and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
