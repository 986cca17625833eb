"""Compare expansion methods end to end: ``python -m lesa_py.compare`` (``lesa compare``).

    python -m lesa_py.compare DIR --target-layers N --out REPORT_DIR
        [--methods lesa,copy,llama-pro,average,random,solar] [--train DATA] [--eval DATA] [--text-field F]
        [--steps S] [--seq-len T] [--batch B] [--lr LR] [--warmup W] [--eval-every K]
        [--eval-tokens N] [--eval-max-tokens N] [--freeze original|none] [--seed S]
        [--lesa-epochs E] [--solar-target N] [--loss-window K] [--keep-models] [--json] [--quiet]

For every method (method.md §3-4, the same base model, text, seed and budget):

1. expand ``DIR`` to ``--target-layers`` with the TypeScript CLI
   (``node dist/src/cli/bin.js expand ... --quiet``; ``random`` gets ``--match-norm``,
   the size-matched control) and time it;
2. measure the expanded model's held-out perplexity with `lesa_py.eval.evaluate`
   on the first ``--eval-max-tokens`` tokens of ``--eval`` (the original model too);
   DATA is any input `lesa train` takes (text file, directory, JSONL, Parquet,
   save_to_disk), tokenised as the model was trained: ``[BOS] doc [EOS]`` per document,
   every window starting with BOS where the tokenizer adds one (`data.conventions`);
3. run a short continued pre-training (`lesa_py.cpt.train`) with identical
   hyper-parameters, seed and data order, held-out loss every ``--eval-every`` steps;
4. write ``REPORT_DIR/report.md``, ``results.json`` and PNG plots (`lesa_py.plots`).

A method whose target is invalid (``solar`` needs an even target in L+1..2L-2;
``stack`` a multiple of L) is recorded as "not applicable" with the reason; one
that fails is recorded as failed; the others go on. ``--solar-target`` runs solar
at another (valid) size instead, recorded in the report.

Two held-out protocols appear, on purpose:

* *initial ppl*: `lesa_py.eval` (sliding windows of 1024, stride 512, the first
  ``--eval-max-tokens`` tokens) -- comparable with ``python -m lesa_py.eval``;
* *held-out loss* during CPT: `cpt.heldout_loss` on non-overlapping windows of
  ``--seq-len`` over the first ``--eval-tokens`` tokens (the curve, step 0 included).
  The original model is measured the same way, as a reference line.

Expanded models live in ``REPORT_DIR/models/<method>`` and are deleted when their
method is done unless ``--keep-models``. CPT logs stay in ``REPORT_DIR/runs/<method>``.

Exit status: 0 if at least one method ran, 1 if all failed, 2 on a user error.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from . import hub
from .checkpoint import read_manifest, weight_files
from .errors import CommandParser, UserError, fail
from .methods import DEFAULT_BIN, ROOT, catalogue, target_problem, use_bin

COMMAND = "lesa compare"  # how the user runs this module (src/cli/python.ts)

DEFAULT_METHODS = "lesa,copy,llama-pro,average,random,solar"
# Variants a method spec may add with "+": NAME+FLAG (e.g. lesa+zero-out, lesa+align+zero-out).
VARIANT_FLAGS = {"zero-out": ["--zero-out"], "align": ["--align"], "mean-fill": ["--fill", "mean"],
                 "layer0-fill": ["--fill", "layer0"]}
# Variants with a value, NAME+KEY=VALUE -> --KEY VALUE (e.g. lesa+epochs=10, lesa+predictor-steps=67200):
# the expand option of that name, its value checked here as a positive integer.
VALUE_VARIANTS = ("epochs", "predictor-steps")
PLACEMENTS = ("top", "uniform", "bottom", "llama-pro")
FIXTURES = Path(os.environ.get("LESA_FIXTURES") or Path.home() / ".cache" / "lesa" / "fixtures")
EVAL_WINDOW, EVAL_STRIDE = 1024, 512
STUDY_SEQ_LEN = 512  # issue 12: windows of at least 512 tokens, the model's context allowing


# ----------------------------------------------------------------------------
# arguments


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(prog=COMMAND,
                                description="Expand with every method, evaluate and train each, write a report.")
    a = p.add_argument
    a("dir", help="original HF checkpoint (safetensors)")
    a("--target-layers", type=int, required=True)
    a("--out", required=True, help="report dir: report.md, results.json, *.png, runs/<method>/log.jsonl")
    a("--methods", default=DEFAULT_METHODS,
      help="comma-separated NAME[+VARIANT...][@PLACEMENT] specs; `lesa methods` lists the methods")
    a("--train", default=str(FIXTURES / "text-docs" / "sotu.jsonl"),
      help="CPT training data (one document per SOTU speech by default); any form `lesa train --train` takes")
    a("--eval", default=str(FIXTURES / "text" / "moby-dick.txt"), help="held-out data, same forms")
    a("--text-field", default="text", help="text field of JSONL rows / column of Parquet and Arrow data")
    a("--steps", type=int, default=60)
    a("--seq-len", type=int, default=None,
      help=f"CPT and held-out window (default {STUDY_SEQ_LEN}, or the model's context if shorter)")
    a("--batch", type=int, default=4)
    a("--lr", type=float, default=1e-4, help="peak learning rate (cosine to lr/10)")
    a("--warmup", type=int, default=None, help="warm-up steps (default: steps // 10)")
    a("--eval-every", type=int, default=10)
    a("--eval-tokens", type=int, default=8192, help="held-out tokens for the CPT eval")
    a("--eval-max-tokens", type=int, default=4096, help="held-out tokens for the initial perplexity")
    a("--tasks", default=None, help="lm-eval tasks (names or task .yaml files, comma list): accuracy of the "
      "original and of each expanded model before CPT, in the report")
    a("--freeze", choices=["original", "none"], default="original")
    a("--seed", type=int, default=0)
    a("--lesa-epochs", type=int, default=None, help="--epochs for the lesa method (default: the CLI's)")
    a("--solar-target", type=int, default=None,
      help="run solar at this target instead of --target-layers (solar needs an even target in L+1..2L-2)")
    a("--loss-window", type=int, default=10, help="final train loss = mean of the last K steps")
    a("--dtype", choices=["f32", "bf16"], default="f32",
      help="CPT and held-out evaluation under bf16 autocast (weights and optimizer stay f32) or plain f32")
    a("--device", choices=["cpu", "cuda"], default="cpu", help="where CPT and the evaluations run")
    a("--threads", type=int, default=None,
      help="torch threads (and the CLI's --threads for expand); on a busy machine 1 is often fastest")
    a("--keep-models", action="store_true", help="keep REPORT_DIR/models/<method>")
    a("--resume", action="store_true",
      help="add to REPORT_DIR/results.json (same model, target and budget): methods already done are kept, "
           "the others run")
    a("--lesa-bin", default=os.environ.get("LESA_BIN", str(DEFAULT_BIN)), help="the built CLI (bin.js)")
    a("--json", action="store_true", help="print results.json to stdout")
    a("--quiet", action="store_true", help="no progress on stderr")
    return p


def check_args(args) -> list[str]:
    try:
        args.dir = str(hub.local_dir(args.dir))  # a hub id: every method expands the same snapshot
    except hub.UserError as e:
        raise UserError(str(e)) from None
    d = Path(args.dir)
    weight_files(d)
    if not Path(args.lesa_bin).is_file():
        raise UserError(f"{args.lesa_bin} missing: build the CLI first (npx tsc -p tsconfig.json)")
    use_bin(args.lesa_bin)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UserError(f"--methods: none given; choose from {', '.join(catalogue())}")
    for m in methods:
        parse_spec(m)
    if len(set(methods)) != len(methods):
        raise UserError("--methods: a method is listed twice")
    from .corpus import DataError, open_corpus

    for f in ("train", "eval"):
        try:
            open_corpus(getattr(args, f), args.text_field)  # the structure now, rows when tokenised
        except DataError as e:
            raise UserError(f"--{f}: {e}") from None
    ctx = json.loads((d / "config.json").read_text())
    ctx = ctx.get("text_config", ctx).get("max_position_embeddings")
    if args.seq_len is None:
        args.seq_len = min(STUDY_SEQ_LEN, ctx or STUDY_SEQ_LEN)
    elif ctx and args.seq_len > ctx:
        raise UserError(f"--seq-len {args.seq_len} exceeds the model's context ({ctx} positions)")
    for name in ("steps", "seq_len", "batch", "eval_tokens", "eval_max_tokens", "loss_window"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.eval_every < 0:
        raise UserError("--eval-every must be at least 0")
    if not args.lr > 0:
        raise UserError("--lr must be positive")
    src = source_layers(d)
    if args.target_layers <= src:
        raise UserError(f"--target-layers {args.target_layers} must exceed the model's {src} layers")
    return methods


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """A method spec NAME[+VARIANT...][@PLACEMENT] -> (CLI method, extra CLI flags).

    PLACEMENT is top|uniform|bottom|llama-pro or after=I:J:K (explicit "after original layer"
    positions, e.g. from a leave-one-out ranking); none means top (the paper's), passed explicitly
    so that a spec does not change meaning with a method's default placement."""
    head, _, place = spec.partition("@")
    name, *variants = head.split("+")
    if name not in catalogue():
        raise UserError(f"--methods: unknown method \"{name}\" in \"{spec}\"; choose from {', '.join(catalogue())}")
    flags: list[str] = []
    for v in variants:
        key, eq, value = v.partition("=")
        if eq and key in VALUE_VARIANTS:
            if not value.isdigit() or int(value) < 1:
                raise UserError(f"--methods: \"+{v}\" in \"{spec}\": {key} takes a positive integer")
            flags += [f"--{key}", value]
            continue
        if v not in VARIANT_FLAGS:
            raise UserError(f"--methods: unknown variant \"+{v}\" in \"{spec}\"; choose from "
                            f"{', '.join(VARIANT_FLAGS)} or {'|'.join(VALUE_VARIANTS)}=N")
        flags += VARIANT_FLAGS[v]
    if not place and catalogue()[name]["placement"]:  # not solar, stack: they place layers by their own rule
        place = "top"  # explicit, so a spec means the same whatever a method's default placement is
    if place:
        if place.startswith("after="):
            pos = place[len("after="):].split(":")
            if not all(p.isdigit() for p in pos):
                raise UserError(f"--methods: \"@{place}\" in \"{spec}\": positions are integers joined by ':'")
            flags += ["--after", ",".join(pos)]
        elif place in PLACEMENTS:
            flags += ["--placement", place]
        else:
            raise UserError(f"--methods: unknown placement \"@{place}\" in \"{spec}\"; choose from "
                            f"{', '.join(PLACEMENTS)} or after=I:J:K")
    return name, flags


def source_layers(d: Path) -> int:
    cfg = json.loads((Path(d) / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    return int(cfg["num_hidden_layers"])


def method_target(method: str, L: int, target: int, solar_target: Optional[int]) -> tuple[Optional[int], str]:
    """(target to use, note) or (None, reason it is not applicable)."""
    method = parse_spec(method)[0]
    t = solar_target if method == "solar" and solar_target is not None else target
    problem = target_problem(method, L, t)
    if problem:
        return None, problem
    return t, "" if t == target else f"run at {t} layers (--solar-target), not {target}"


# ----------------------------------------------------------------------------
# environment record


def machine() -> dict:
    info: dict = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        models = [l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("model name")]
        info["cpu_model"] = models[0] if models else platform.processor()
        info["cpu_logical"] = len(models) or os.cpu_count()
    except OSError:
        info["cpu_model"] = platform.processor()
    try:
        info["nproc"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["nproc"] = os.cpu_count()
    try:
        for l in Path("/proc/meminfo").read_text().splitlines():
            if l.startswith("MemTotal:"):
                info["mem_total_gib"] = round(int(l.split()[1]) / 2**20, 2)
    except OSError:
        pass
    info["loadavg_start"] = load_avg()
    return info


def load_avg() -> Optional[list[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions(lesa_bin: str) -> dict:
    import numpy
    import torch
    import transformers

    v = {"torch": torch.__version__, "transformers": transformers.__version__, "numpy": numpy.__version__,
         "python": platform.python_version(), "torch_threads": torch.get_num_threads()}
    with contextlib.suppress(Exception):
        import matplotlib
        v["matplotlib"] = matplotlib.__version__
    with contextlib.suppress(Exception):
        v["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    with contextlib.suppress(Exception):
        v["lesa"] = json.loads((ROOT / "package.json").read_text()).get("version")
    with contextlib.suppress(Exception):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
        v["git_commit"] = head or None
    return v


# ----------------------------------------------------------------------------
# the pieces


class Log:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.t0 = time.time()

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[compare {time.time() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def expand(lesa_bin: str, src: Path, out: Path, spec: str, target: int, seed: int,
           lesa_epochs: Optional[int], threads: Optional[int] = None) -> tuple[list[str], float, subprocess.CompletedProcess]:
    method, flags = parse_spec(spec)
    cmd = ["node", str(lesa_bin), "expand", str(src), "-o", str(out), "--method", method,
           "--target-layers", str(target), "--seed", str(seed), "--quiet", "--force", *flags]
    if threads:
        cmd += ["--threads", str(threads)]
    if method == "random":
        cmd.append("--match-norm")
    if method == "lesa" and lesa_epochs is not None and "--epochs" not in flags and "--predictor-steps" not in flags:
        cmd += ["--epochs", str(lesa_epochs)]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return cmd, time.time() - t0, p


def tokens(model_dir: Path, source: str, text_field: str):
    """(ids, info) of a data source with `model_dir`'s tokenizer (cached; see data.tokenize_corpus)."""
    from transformers import AutoTokenizer

    from .data import tokenize_corpus

    cache = Path(os.environ.get("LESA_CACHE_DIR") or Path.home() / ".cache/lesa/tokens")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    return tokenize_corpus(tok, model_dir, source, cache, text_field=text_field)


def initial_ppl(model_dir: Path, held: tuple, max_tokens: int, device: str = "cpu") -> dict:
    """lesa_py.eval on the first max_tokens tokens of the held-out stream (windows 1024, stride 512,
    each starting with BOS where the model takes one). `held` is `tokens()` of the eval data."""
    import numpy as np

    from .eval import evaluate, load

    ids, info = held
    ids = np.array(ids[:max_tokens], dtype=np.int64)  # a writable copy of the memory-mapped cache
    model, _ = load(model_dir, device=device, dtype="f32")
    try:
        return evaluate(model, ids, max_tokens=max_tokens, window=EVAL_WINDOW, stride=EVAL_STRIDE, bos=info["bos"])
    finally:
        del model


def task_accuracy(model_dir: Path, tasks: str) -> dict:
    """lm-eval accuracy per task (lesa_py.tasks) of the model as expanded (no CPT)."""
    from .eval import load
    from .tasks import run_tasks

    model, tok = load(model_dir, device="cpu", dtype="f32")
    try:
        return run_tasks(model, tok, [t.strip() for t in tasks.split(",") if t.strip()])
    finally:
        del model


def original_heldout_loss(model_dir: Path, held: tuple, seq_len: int, eval_tokens: int, batch: int,
                          device: str = "cpu", dtype: str = "f32") -> float:
    """The original model's loss on exactly the CPT eval windows (the reference line)."""
    import torch
    from .cpt import heldout_loss
    from .lm import load_lm
    from .data import eval_windows

    ids, info = held
    windows = eval_windows(ids, seq_len, eval_tokens, bos=info["bos"], eos=info["eos"])
    model = load_lm(model_dir, dtype=torch.float32).to(device)
    autocast = lambda: torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bf16")  # as cpt does
    return heldout_loss(model, windows, batch, torch.device(device), autocast)


def data_record(info: dict) -> dict:
    """What the report says about one input: documents, tokens, rows skipped, the conventions."""
    return {k: info[k] for k in ("tokens", "documents", "skipped", "ignored_files", "bos", "eos")}


def read_log(path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train rows [(step, loss)], eval rows [(step, eval_loss)]) of a cpt log.jsonl."""
    train, ev = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if "loss" in r:
            train.append((r["step"], r["loss"]))
        if "eval_loss" in r:
            ev.append((r["step"], r["eval_loss"]))
    return train, ev


def steps_to_reach(ev: list[tuple[int, float]], target: float) -> Optional[int]:
    """First eval step whose held-out loss is <= target (None: never)."""
    for step, loss in ev:
        if loss <= target + 1e-12:
            return step
    return None


def _finite(x) -> Optional[float]:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def _ppl(loss: Optional[float]) -> Optional[float]:
    return math.exp(min(loss, 700.0)) if loss is not None else None


# ----------------------------------------------------------------------------
# main flow


def run(args, argv: list[str]) -> dict:
    methods = check_args(args)
    log = Log(args.quiet)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # HF's per-load bars, once per model, are noise here
    if args.threads:
        torch.set_num_threads(args.threads)
    src = Path(args.dir).resolve()
    out = Path(args.out).resolve()
    from .data import CACHE_VERSION, DataError

    data = {}
    for flag in ("eval", "train"):  # tokenised once here (cached), reused by every method
        try:
            data[flag] = tokens(src, getattr(args, flag), args.text_field)
        except DataError as e:
            raise UserError(f"--{flag}: {e}") from None
        if data[flag][1]["skipped_note"]:
            log(f"--{flag} {data[flag][1]['path']}: {data[flag][1]['skipped_note']}")
    held, train_info = data["eval"], data["train"][1]
    out.mkdir(parents=True, exist_ok=True)
    L = source_layers(src)
    warmup = args.warmup if args.warmup is not None else max(0, args.steps // 10)
    started = _dt.datetime.now(_dt.timezone.utc)
    t_all = time.time()

    results: dict = {
        "format": "lesa-compare/1",
        "date": started.isoformat(timespec="seconds"),
        "command": "python -m lesa_py.compare " + shlex.join(argv),
        "cwd": os.getcwd(),
        "model": str(src),
        "source_layers": L,
        "target_layers": args.target_layers,
        "methods": methods,
        "settings": {
            "train": str(Path(args.train).resolve()), "eval": str(Path(args.eval).resolve()),
            "text_field": args.text_field, "data_format": CACHE_VERSION,
            "train_data": data_record(train_info), "eval_data": data_record(held[1]),
            "steps": args.steps, "seq_len": args.seq_len, "batch": args.batch, "lr": args.lr,
            "min_lr": args.lr / 10, "warmup": warmup, "eval_every": args.eval_every,
            "eval_tokens": args.eval_tokens, "eval_max_tokens": args.eval_max_tokens,
            "initial_ppl_window": EVAL_WINDOW, "initial_ppl_stride": EVAL_STRIDE,
            "freeze": args.freeze, "seed": args.seed, "lesa_epochs": args.lesa_epochs,
            "solar_target": args.solar_target, "loss_window": args.loss_window, "threads": args.threads,
            "tokens_per_step": args.batch * args.seq_len, "random_flags": "--match-norm", "tasks": args.tasks,
            "dtype": args.dtype, "device": args.device,
        },
        "machine": machine(),
        "versions": versions(args.lesa_bin),
    }

    prior = load_prior(out, results) if args.resume else None
    # One entry per lesa compare run that wrote this report (a --resume adds one).
    results["stages"] = [*_stages(prior), {"date": results["date"], "command": results["command"], "wall_seconds": None}] if prior else []
    if prior:
        results["date"] = prior["date"]
        results["command"] = prior["command"] + "\n" + results["command"]
        results["methods"] = list(dict.fromkeys(prior["methods"] + methods))
        results["machine"]["loadavg_start"] = prior["machine"].get("loadavg_start")

    # -- the original model -------------------------------------------------
    if prior and "initial_ppl" in prior.get("original", {}):
        results["original"] = prior["original"]
    else:
        results["original"] = original_model(src, L, held, args, log)
    per: dict = dict(prior["runs"]) if prior else {}
    results["runs"] = per
    for i, m in enumerate(methods):
        if prior and per.get(m, {}).get("status") == "ok":
            log(f"[{i + 1}/{len(methods)}] {m}: kept from {out / 'results.json'}")
            continue
        per[m] = run_method(m, src, out, L, held, warmup, args, log, i, len(methods))
        if i + 1 < len(methods):  # a partial report after each method: a long run that dies still leaves one
            results["partial"] = True
            write_report(results, out, t_all, log, False, methods if args.resume else None)
    results.pop("partial", None)
    if not args.keep_models:
        with contextlib.suppress(OSError):
            (out / "models").rmdir()
    write_report(results, out, t_all, log, True, methods if args.resume else None)
    return results


def write_report(results: dict, out: Path, t_all: float, log, final: bool, mine: Optional[list[str]]) -> None:
    """finish(), and with --resume first take in what other runs added to results.json meanwhile
    (two --resume runs on one report each keep the other's methods), under a lock."""
    if mine is None:
        finish(results, out, t_all, log, final)
        return
    import fcntl

    with open(out / ".results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        f = out / "results.json"
        try:
            disk = json.loads(f.read_text()) if f.is_file() else {}
        except ValueError:
            disk = {}
        for m, r in disk.get("runs", {}).items():
            if m not in mine:
                results["runs"][m] = r
        results["methods"] = list(dict.fromkeys(disk.get("methods", []) + results["methods"]))
        for line in disk.get("command", "").splitlines():
            if line not in results["command"].splitlines():
                results["command"] += "\n" + line
        if results.get("stages"):
            mine_stage = results["stages"][-1]
            merged = {(st["date"], st["command"]): st for st in _stages(disk) + results["stages"][:-1]}
            results["stages"] = sorted(merged.values(), key=lambda st: st["date"]) + [mine_stage]
        finish(results, out, t_all, log, final)


def _stages(res: Optional[dict]) -> list[dict]:
    """The stages a results.json records (reports from before stages were recorded count as one)."""
    if not res:
        return []
    return res.get("stages") or [{"date": res["date"], "command": res["command"], "wall_seconds": res.get("wall_seconds")}]


# Settings that must match for --resume to add runs to an existing report.
RESUME_KEYS = ("steps", "seq_len", "batch", "lr", "min_lr", "warmup", "eval_every", "eval_tokens", "eval_max_tokens",
               "freeze", "seed", "lesa_epochs", "solar_target", "loss_window", "train", "eval", "text_field",
               "data_format", "dtype")


def load_prior(out: Path, results: dict) -> Optional[dict]:
    f = out / "results.json"
    if not f.is_file():
        return None
    prior = json.loads(f.read_text())
    if prior.get("format") != results["format"]:
        raise UserError(f"--resume: {f} is not a lesa-compare/1 results file")
    same = [(k, prior.get(k), results[k]) for k in ("model", "source_layers", "target_layers")]
    same += [(k, prior["settings"].get(k), results["settings"][k]) for k in RESUME_KEYS]
    diff = [f"{k}: {a!r} there, {b!r} now" for k, a, b in same if a != b]
    if diff:
        raise UserError(f"--resume: {f} was made with other settings ({'; '.join(diff)}); use another --out")
    return prior


def original_model(src: Path, L: int, held: tuple, args, log) -> dict:
    log(f"original {src.name} ({L} layers): initial perplexity on {args.eval_max_tokens} held-out tokens")
    orig: dict = {}
    try:
        r = initial_ppl(src, held, args.eval_max_tokens, args.device)
        orig.update(initial_nll=r["nll"], initial_ppl=r["ppl"], eval_tokens_scored=r["tokens"],
                    eval_seconds=round(r["seconds"], 3))
        orig["heldout_loss"] = original_heldout_loss(src, held, args.seq_len, args.eval_tokens, args.batch,
                                                     args.device, args.dtype)
        orig["heldout_ppl"] = _ppl(orig["heldout_loss"])
        if args.tasks:
            orig["tasks"] = task_accuracy(src, args.tasks)
        log(f"original: ppl {r['ppl']:.3f}, CPT-window held-out loss {orig['heldout_loss']:.4f}")
    except Exception as e:  # the comparison still stands without the reference
        orig["error"] = f"{type(e).__name__}: {e}"
        log(f"original: evaluation failed: {orig['error']}")
    return orig


def run_method(m: str, src: Path, out: Path, L: int, held: tuple, warmup: int, args, log, i: int, n: int) -> dict:
    rec: dict = {"method": m}
    target, note = method_target(m, L, args.target_layers, args.solar_target)
    if target is None:
        rec.update(status="not applicable", reason=note)
        log(f"[{i + 1}/{n}] {m}: not applicable ({note})")
        return rec
    rec["target_layers"] = target
    if note:
        rec["note"] = note
    model_dir = out / "models" / m
    run_dir = out / "runs" / m
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        log(f"[{i + 1}/{n}] {m}: expand {L} -> {target}")
        cmd, secs, p = expand(args.lesa_bin, src, model_dir, m, target, args.seed, args.lesa_epochs,
                                args.threads)
        rec["expand_command"] = shlex.join(cmd)
        rec["expand_seconds"] = round(secs, 3)
        if p.returncode != 0:
            why = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
            if p.returncode == 2:
                rec.update(status="not applicable", reason=why)
                log(f"  {m}: not applicable: {why}")
            else:
                rec.update(status="failed", stage="expand", error=why, stderr_tail=p.stderr[-2000:])
                log(f"  {m}: expand failed: {why}")
            return rec
        man = read_manifest(model_dir)
        rec["new_layers"] = man.get("new_layers")
        if man.get("alignment"):
            rec["alignment"] = man["alignment"]
        log(f"  {m}: expanded in {secs:.1f}s; new layers {rec['new_layers']}")

        rec["stage"] = "initial eval"
        r = initial_ppl(model_dir, held, args.eval_max_tokens, args.device)
        rec.update(initial_nll=r["nll"], initial_ppl=r["ppl"], initial_eval_seconds=round(r["seconds"], 3))
        log(f"  {m}: initial ppl {r['ppl']:.3f} ({r['seconds']:.1f}s)")
        if args.tasks:
            rec["stage"] = "tasks"
            rec["tasks"] = task_accuracy(model_dir, args.tasks)

        rec["stage"] = "cpt"
        from .cpt import train

        summary = train(dict(
            model=str(model_dir), train=args.train, eval=args.eval, text_field=args.text_field, out=str(run_dir),
            freeze=args.freeze,
            steps=args.steps, seq_len=args.seq_len, batch=args.batch, lr=args.lr, min_lr=args.lr / 10,
            warmup=warmup, seed=args.seed, eval_every=args.eval_every, eval_tokens=args.eval_tokens,
            save_every=0, device=args.device, dtype=args.dtype, quiet=args.quiet,
        ))
        tr, ev = read_log(run_dir / "log.jsonl")
        k = min(args.loss_window, len(tr))
        rec.update(
            status="ok",
            cpt_seconds=summary["wall"],
            trainable_params=summary["trainable_params"],
            total_params=summary["total_params"],
            tokens=summary["tokens"],
            cpt_initial_eval_loss=ev[0][1] if ev and ev[0][0] == 0 else None,
            final_train_loss=sum(l for _, l in tr[-k:]) / k if k else None,
            final_eval_loss=summary["final_eval_loss"],
            final_eval_ppl=summary["final_eval_ppl"],
            best_eval_loss=min((l for _, l in ev), default=None),
            train_curve=tr, eval_curve=ev,
            log=str((run_dir / "log.jsonl").relative_to(out)),
        )
        rec.pop("stage", None)
        log(f"  {m}: CPT {args.steps} steps in {summary['wall']:.0f}s; final train loss "
            f"{rec['final_train_loss']:.4f}, held-out {rec['final_eval_loss']:.4f}")
    except Exception as e:
        rec.update(status="failed", error=f"{type(e).__name__}: {e}")
        rec.setdefault("stage", "unknown")
        log(f"  {m}: failed at {rec['stage']}: {rec['error']}")
    finally:
        if not args.keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)
    return rec


def finish(results: dict, out: Path, t_all: float, log, final: bool) -> None:
    """Derived numbers, results.json, plots, report.md (also for a partial run)."""
    per = results["runs"]
    ok = {m: r for m, r in per.items() if r.get("status") == "ok" and _finite(r.get("final_eval_loss")) is not None}
    baselines = {m: r for m, r in ok.items() if parse_spec(m)[0] != "lesa"}
    summary: dict = {"ok": sorted(ok), "failed": sorted(m for m, r in per.items() if r["status"] == "failed"),
                     "not_applicable": sorted(m for m, r in per.items() if r["status"] == "not applicable")}
    if ok:
        winner = min(ok, key=lambda m: ok[m]["final_eval_loss"])
        summary["winner"] = winner
    if baselines:
        best = min(baselines, key=lambda m: baselines[m]["final_eval_loss"])
        target = baselines[best]["final_eval_loss"]
        summary.update(best_baseline=best, best_baseline_final_eval_loss=target)
        for m, r in ok.items():
            r["steps_to_best_baseline"] = steps_to_reach(r["eval_curve"], target)
        if "lesa" in ok:
            d = ok["lesa"]["final_eval_loss"] - target
            summary["lesa_minus_best_baseline_eval_loss"] = d
            summary["lesa_vs_best_baseline_ppl_ratio"] = math.exp(d)
    results["summary"] = summary
    from .plots import group

    for m, r in per.items():
        r["group"] = group(m)  # the loss figures' panel (lesa_py.plots and the HTML report)
    results["machine"]["loadavg_end"] = load_avg()
    results["wall_seconds"] = round(time.time() - t_all, 1)
    if results.get("stages"):
        results["stages"][-1]["wall_seconds"] = results["wall_seconds"]

    # -- files -----------------------------------------------------------------
    results.pop("plots_error", None)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    try:
        from . import plots

        results["plots"] = plots.write_all(results, out)
    except Exception as e:
        results["plots_error"] = f"{type(e).__name__}: {e}"
        log(f"plots failed: {results['plots_error']}")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "report.md").write_text(report_md(results))
    if final:
        log(f"wrote {out / 'report.md'}, results.json and plots in {results['wall_seconds']:.0f}s")


# ----------------------------------------------------------------------------
# report


def _f(x, fmt="{:.4f}") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return fmt.format(x)


def _ppl_fmt(x) -> str:
    if x is None:
        return "n/a"
    if not math.isfinite(x):
        return "inf"
    return f"{x:.3e}" if x >= 1e5 else f"{x:.2f}"


def _wall(res: dict) -> str:
    stages = res.get("stages") or []
    if len(stages) < 2:
        return f"{res['wall_seconds']:.0f} s"
    total = sum(st["wall_seconds"] or 0 for st in stages)
    return f"{len(stages)} stages ({total:.0f} s of wall time in all, stages may have overlapped; the last {res['wall_seconds']:.0f} s)"


def _data_line(s: dict) -> str:
    tr, ev = s.get("train_data"), s.get("eval_data")
    if not tr or not ev:
        return ""
    skipped = "; ".join(f"{name}: {sum(d['skipped'].values())} rows skipped ({', '.join(f'{c} {w}' for w, c in d['skipped'].items())})"
                        for name, d in (("train", tr), ("eval", ev)) if d["skipped"])
    bos = f"every window starts with BOS (id {tr['bos']})" if tr["bos"] is not None else "no BOS (the tokenizer adds none)"
    eos = f"documents end with EOS (id {tr['eos']})" if tr["eos"] is not None else "documents are not separated"
    return (f" ({tr['documents']} documents, {tr['tokens']:,} tokens; held-out {ev['documents']} documents, "
            f"{ev['tokens']:,} tokens); {bos}, {eos}" + (f"; {skipped}" if skipped else ""))


def report_md(res: dict) -> str:
    s, m = res["settings"], res["machine"]
    v = res["versions"]
    summ = res.get("summary", {})
    orig = res.get("original", {})
    lines = [
        f"# Expansion methods compared: {Path(res['model']).name}, {res['source_layers']} -> {res['target_layers']} layers",
        "",
        f"Generated by `lesa compare` on {res['date']} in {_wall(res)}."
        + (" **PARTIAL: the run has not finished (or died); methods below without a row are missing.**"
           if res.get("partial") else ""),
        "",
        "```",
        res["command"],
        "```",
        "",
        "## Setup",
        "",
        f"- model: `{res['model']}` ({res['source_layers']} layers), target {res['target_layers']} layers",
        f"- CPT: {s['steps']} steps x {s['batch']} x {s['seq_len']} tokens = {s['steps'] * s['tokens_per_step']:,} "
        f"tokens per method, AdamW lr {s['lr']:g} (cosine to {s['min_lr']:g}, warm-up {s['warmup']}), seed {s['seed']}, "
        f"`--freeze {s['freeze']}`"
        + (" (only the new layers train)" if s["freeze"] == "original" else " (all parameters train)")
        + "; every method sees the same windows in the same order",
        f"- train data: `{s['train']}`; held-out data: `{s['eval']}`" + _data_line(s),
        f"- held-out loss during CPT: first {s['eval_tokens']} tokens in windows of {s['seq_len']}, "
        f"every {s['eval_every']} steps (and step 0)",
        f"- initial perplexity: `lesa_py.eval` on the first {s['eval_max_tokens']} held-out tokens "
        f"(window {s['initial_ppl_window']}, stride {s['initial_ppl_stride']})",
        f"- `random` runs with `{s['random_flags']}` (size-matched control)"
        + (f"; `lesa` with `--epochs {s['lesa_epochs']}`" if s.get("lesa_epochs") else "; `lesa` with the CLI's default epochs"),
        f"- machine: {m.get('cpu_model')}, nproc {m.get('nproc')}, {m.get('mem_total_gib')} GiB RAM, "
        f"load average {m.get('loadavg_start')} at start, {m.get('loadavg_end')} at end (shared machine: "
        f"timings are noisy)",
        f"- versions: torch {v.get('torch')}, transformers {v.get('transformers')}, numpy {v.get('numpy')}, "
        f"torch threads {s.get('threads') or v.get('torch_threads')}, python {v.get('python')}, node {v.get('node')}, lesa {v.get('lesa')} (commit {str(v.get('git_commit'))[:12]})",
        "",
        "## Results",
        "",
    ]
    if "initial_ppl" in orig:
        lines.append(f"Original model: initial ppl **{orig['initial_ppl']:.2f}**; held-out loss on the CPT windows "
                     f"{orig['heldout_loss']:.4f} (ppl {orig['heldout_ppl']:.2f}).")
        lines.append("")
    bb = summ.get("best_baseline")
    lines += [
        "| method | layers | expand s | initial ppl | held-out loss @0 | final train loss (last "
        f"{s['loss_window']}) | final held-out loss | final held-out ppl | steps to {bb or 'best baseline'}'s final loss |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in res["runs"].items():
        st = r.get("status")
        if st != "ok":
            why = r.get("reason") or f"failed at {r.get('stage')}: {r.get('error')}"
            lines.append(f"| {name} | {r.get('target_layers', '-')} | {_f(r.get('expand_seconds'), '{:.1f}')} | "
                         f"{_ppl_fmt(r.get('initial_ppl'))} | {st}: {why.replace('|', '/')} | | | | |")
            continue
        reach = r.get("steps_to_best_baseline")
        lines.append(
            f"| {name} | {r['target_layers']} | {r['expand_seconds']:.1f} | {_ppl_fmt(r['initial_ppl'])} | "
            f"{_f(r.get('cpt_initial_eval_loss'))} | {_f(r['final_train_loss'])} | {_f(r['final_eval_loss'])} | {_ppl_fmt(r['final_eval_ppl'])} | "
            f"{'n/a' if reach is None else reach} |")
    lines.append("")
    lines.append(f"Initial ppl: `lesa_py.eval` protocol; held-out loss @0 / final: the CPT eval windows (step 0 / "
                 f"step {s['steps']}), to compare with the original's {_f(orig.get('heldout_loss'))}.")
    if bb:
        lines.append(f"Best baseline (lowest final held-out loss, excluding `lesa`): **{bb}** "
                     f"({summ['best_baseline_final_eval_loss']:.4f}). \"Steps to\" is the first eval step "
                     f"(resolution {s['eval_every']}) whose held-out loss is at or below it; n/a: never within "
                     f"{s['steps']} steps.")
    if "winner" in summ:
        lines.append(f"Lowest final held-out loss overall: **{summ['winner']}**.")
    if "lesa_minus_best_baseline_eval_loss" in summ:
        d = summ["lesa_minus_best_baseline_eval_loss"]
        lines.append(f"LESA minus best baseline: {d:+.4f} nats/token held-out "
                     f"(perplexity ratio {summ['lesa_vs_best_baseline_ppl_ratio']:.4f}; below 1 means LESA is better).")
    notes = [f"- `{n}`: {r['note']}" for n, r in res["runs"].items() if r.get("note")]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += task_table(res)
    lines += ["", "## Plots", ""]
    for title, key in (("Held-out loss vs step", "heldout"), ("Training loss (smoothed) vs step", "train"),
                       ("Initial perplexity", "initial")):
        f = (res.get("plots") or {}).get(key)
        if f:
            lines += [f"![{title}]({f})", ""]
    if res.get("plots_error"):
        lines += [f"(plots failed: {res['plots_error']})", ""]
    lines += ["## Timings (s)", "", "| method | expand | initial eval | CPT |", "| --- | ---: | ---: | ---: |"]
    for name, r in res["runs"].items():
        lines.append(f"| {name} | {_f(r.get('expand_seconds'), '{:.1f}')} | {_f(r.get('initial_eval_seconds'), '{:.1f}')} "
                     f"| {_f(r.get('cpt_seconds'), '{:.1f}')} |")
    lines += ["", "Every number, the per-step curves and the expand commands are in `results.json`; the CPT logs are "
              "`runs/<method>/log.jsonl`.", ""]
    return "\n".join(lines)


def task_table(res: dict) -> list[str]:
    """The "Downstream accuracy" section: acc (acc_norm) per task, original then each method."""
    rows = [("original", res.get("original", {}))] + list(res["runs"].items())
    tasks = list(dict.fromkeys(t for _, r in rows for t in (r.get("tasks") or {})))
    if not tasks:
        return []
    n = {t: next(r["tasks"][t].get("n") for _, r in rows if t in (r.get("tasks") or {})) for t in tasks}
    lines = ["", "## Downstream accuracy (lm-evaluation-harness, before CPT)", "",
             "| model | " + " | ".join(f"{t} acc (acc_norm), n={n[t]}" for t in tasks) + " |",
             "| --- |" + " ---: |" * len(tasks)]
    for name, r in rows:
        got = r.get("tasks") or {}
        cells = [f"{got[t]['acc']:.3f} ({got[t].get('acc_norm', float('nan')):.3f})" if "acc" in got.get(t, {}) else "-"
                 for t in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.quiet:  # lm-eval's and datasets' bars (--tasks): tqdm reads this when it is first imported
        os.environ["TQDM_DISABLE"] = "1"
    try:
        res = run(args, argv)
    except UserError as e:
        return fail(COMMAND, e)
    if args.json:
        print(json.dumps(res, indent=2))
    return 0 if res["summary"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
