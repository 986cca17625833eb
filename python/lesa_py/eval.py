"""Perplexity of a causal LM on held-out text (strided sliding windows), and/or downstream
accuracy on lm-evaluation-harness tasks.

    python -m lesa_py.eval DIR|ORG/NAME[@REV] [--text DATA [--text-field F]] [--tasks T1,T2,...] [--limit N]
        [--num-fewshot K] [--max-tokens N] [--window 1024] [--stride 512]
        [--batch B] [--device cpu|cuda|auto] [--dtype f32|bf16] [--json] [--quiet]

--tasks takes lm-eval task names or task YAML paths (see lesa_py.tasks); the result gains
"tasks": {name: {"acc": ..., "acc_norm": ..., "n": ...}}.

DATA is what `lesa train` reads (lesa_py.corpus): a UTF-8 text file, a directory of .txt /
.jsonl / .parquet files, JSON Lines or Parquet (the --text-field column), or a dataset saved
with `datasets.save_to_disk`. Each document is tokenized with the model's own tokenizer and
conventions as in training (lesa_py.data: ``[BOS] text [EOS]``); the documents are scored as
one stream. Rows that cannot be a document are skipped and counted (stderr, and "skipped" in
--json).
Windows follow the standard HF recipe: window k covers [k*stride, k*stride+window) and
scores only the tokens no earlier window scored, so every token but the first is scored
exactly once, with at least window-stride tokens of context (after the first window).
For a model whose tokenizer adds BOS (Gemma), every window starts with BOS, as the model
was trained: the windows are cut from the tokens after the leading BOS, window-1 long,
and each gets BOS in front (the first window is exactly the first `window` tokens).
Reported: tokens (number of tokens scored), nll (mean negative log-likelihood in
nats/token), ppl = exp(nll), seconds.
Exit codes: 0 ok, 2 user error (one line on stderr), 1 other failure.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from .checkpoint import weight_files
from .errors import CommandParser, UserError, fail
from .progress import Progress

COMMAND = "lesa eval"  # how the user runs this module (src/cli/python.ts)

DTYPES = {"f32": "float32", "bf16": "bfloat16"}


def windows(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, n_scored) per window over n tokens; the scored tokens are the last
    n_scored of ids[begin:end] (minus position 0, which has no prediction)."""
    if not 1 <= stride < window:  # stride == window would leave window starts without context
        raise UserError(f"need 1 <= stride < window, got stride {stride}, window {window}")
    out, prev_end = [], 0
    for begin in range(0, n, stride):
        end = min(begin + window, n)
        out.append((begin, end, end - prev_end))
        prev_end = end
        if end == n:
            break
    return out


def tokenize(tokenizer, text: str, max_tokens: int | None = None):
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    return ids[:max_tokens] if max_tokens else ids


def evaluate(model, tokenizer_or_ids, text: str | None = None, *, max_tokens: int | None = None,
             window: int = 1024, stride: int = 512, batch: int = 1, quiet: bool = True,
             bos: int | None = None) -> dict:
    """Token-level mean NLL / perplexity of `model` over token ids (a 1-D sequence) or over
    `text` tokenized with the given tokenizer. Returns {tokens, nll, ppl, seconds}.

    `bos`: the model's BOS if it takes one (`data.conventions`; found from the tokenizer
    when `text` is given). If the ids start with it, every window starts with it."""
    import torch

    from .data import conventions

    t0 = time.time()
    if text is not None:
        ids = tokenize(tokenizer_or_ids, text, max_tokens)
        bos = conventions(tokenizer_or_ids).bos
    else:
        ids = torch.as_tensor(tokenizer_or_ids, dtype=torch.long).flatten()
        ids = ids[:max_tokens] if max_tokens else ids
    n = int(ids.numel())
    if n < 2:
        raise UserError(f"need at least 2 tokens to score, got {n}")
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and min(window, n) > limit:
        raise UserError(f"--window {window} exceeds the model's max_position_embeddings {limit}")
    lead = ids[:1] if bos is not None and int(ids[0]) == bos else ids[:0]  # prepended to every window
    body = ids[len(lead):]
    if len(lead) and stride >= window - 1:
        raise UserError(f"with BOS in every window, need stride < window - 1, got stride {stride}, window {window}")
    specs = windows(len(body), window - len(lead), stride)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_nll, scored = 0.0, 0
    # Batch consecutive windows of equal length (only the last one may be shorter).
    groups: list[list[tuple[int, int, int]]] = []
    for s in specs:
        g = groups[-1] if groups else None
        if g and len(g) < batch and g[0][1] - g[0][0] == s[1] - s[0] and g[0][2] == s[2]:
            g.append(s)
        else:
            groups.append([s])
    with Progress(n - 1, "eval", quiet=quiet) as bar, torch.inference_mode():
        for g in groups:
            t = g[0][2]
            x = torch.stack([torch.cat([lead, body[b:e]]) for b, e, _ in g]).to(device)
            length = x.size(1)
            keep = min(t + 1, length)  # logits at the last `keep` positions predict the scored tokens
            logits = model(input_ids=x, logits_to_keep=keep, use_cache=False).logits[:, :-1].float()
            targets = x[:, length - keep + 1:]
            logp = torch.log_softmax(logits, dim=-1)
            nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            total_nll += float(nll.double().sum())
            scored += targets.numel()
            bar.update(targets.numel())
    model.train(was_training)
    assert scored == n - 1, (scored, n)
    mean = total_nll / scored
    return {"tokens": scored, "nll": mean, "ppl": math.exp(mean), "seconds": time.time() - t0}


def conventions_check(model, tokenizer, text: str, *, seq_len: int = 512, n_tokens: int = 8192,
                      batch: int = 1) -> dict:
    """Does the harness score the model as the model's own conventions do? (a sanity row)

    Harness: `text` as one document through `data` (``[BOS] doc [EOS]``, `eval_windows`)
    and `cpt.heldout_loss`, as `lesa train` / `lesa compare` run it. Reference: each
    window's text tokens decoded and handed to the tokenizer with its default special
    tokens, one transformers forward with labels. A window whose decode/encode round trip
    changes its tokens is left out of both (counted in `skipped`). Returns {harness,
    reference, diff, windows, skipped}; diff should be ~1e-6 (float noise).
    """
    import contextlib

    import numpy as np
    import torch

    from .cpt import heldout_loss
    from .data import conventions, encode_documents, eval_windows

    conv = conventions(tokenizer)
    ids = encode_documents(tokenizer, [[text]], conv)
    kept, refs, skipped = [], [], 0
    device = next(model.parameters()).device
    with torch.inference_mode():
        for w in eval_windows(ids, seq_len, n_tokens, bos=conv.bos, eos=conv.eos):
            body = [int(t) for t in (w[1:] if conv.bos is not None else w)]
            piece = tokenizer.decode(body)
            if list(tokenizer(piece, add_special_tokens=False)["input_ids"]) != body:
                skipped += 1
                continue
            x = torch.tensor([tokenizer(piece)["input_ids"]], device=device)
            refs.append(float(model(input_ids=x, labels=x, use_cache=False).loss))
            kept.append(w)
    if not kept:
        raise UserError("conventions_check: no window survives the decode/encode round trip")
    harness = heldout_loss(model, np.stack(kept), batch, device, contextlib.nullcontext)
    reference = sum(refs) / len(refs)  # equal-length windows: the mean of means is the token mean
    return {"harness": harness, "reference": reference, "diff": abs(harness - reference),
            "windows": len(kept), "skipped": skipped}


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available")
    return name


def check_dir(d: Path) -> None:
    weight_files(d)


def load(model_dir: str | Path, device: str = "cpu", dtype: str = "f32"):
    """Load a safetensors HF checkpoint and its tokenizer; refuses pickle-only checkpoints."""
    import torch
    from transformers import AutoTokenizer

    from .lm import load_lm

    d = Path(model_dir)
    check_dir(d)
    model = load_lm(d, dtype=getattr(torch, DTYPES[dtype])).to(resolve_device(device))
    tok = AutoTokenizer.from_pretrained(d)
    return model.eval(), tok


def main(argv: list[str] | None = None) -> int:
    ap = CommandParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="checkpoint directory or Hugging Face hub id ORG/NAME[@REVISION]")
    ap.add_argument("--text", help="held-out perplexity on DATA: a text file, a directory, JSONL, Parquet or save_to_disk")
    ap.add_argument("--text-field", default="text", help="the text field of JSONL / Parquet / datasets rows")
    ap.add_argument("--tasks", help="comma list of lm-eval task names or task .yaml files: accuracy")
    ap.add_argument("--limit", type=int, default=None, help="score only the first N examples of each task")
    ap.add_argument("--num-fewshot", type=int, default=None, help="few-shot examples (default: the task's own)")
    ap.add_argument("--max-tokens", type=int, default=None, help="use only the first N tokens")
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--stride", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    ap.add_argument("--dtype", choices=list(DTYPES), default="f32")
    ap.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    if args.quiet:  # lm-eval's and datasets' bars: tqdm reads this when it is first imported
        os.environ["TQDM_DISABLE"] = "1"
    from . import hub, tasks
    from .corpus import open_corpus
    from .data import conventions, encode_corpus

    try:
        if args.text is None and args.tasks is None:
            raise UserError("give --text FILE (perplexity) and/or --tasks T1,T2 (lm-eval accuracy)")
        if args.batch < 1 or (args.max_tokens is not None and args.max_tokens < 2):
            raise UserError("--batch must be >= 1 and --max-tokens >= 2")
        if (args.limit is not None and args.limit < 1) or (args.num_fewshot is not None and args.num_fewshot < 0):
            raise UserError("--limit must be >= 1 and --num-fewshot >= 0")
        task_list = [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
        if args.tasks is not None and not task_list:
            raise UserError("--tasks: no task given")
        if task_list:
            tasks.task_specs(task_list)  # a missing or malformed task file: said before the (slow) load
        corpus = None
        if args.text is not None:
            corpus = open_corpus(args.text, args.text_field)  # the structure now, the rows once tokenized
            data_sha256 = corpus.fingerprint()  # as lesa train's: also finds a text file that is not UTF-8, now
            windows(2, args.window, args.stride)  # validate before the (slow) imports and load
        model_dir = hub.local_dir(args.dir)
        check_dir(model_dir)
        from transformers.utils import logging

        logging.set_verbosity_error()
        logging.disable_progress_bar()  # ours (below) honours --quiet
        model, tok = load(model_dir, args.device, args.dtype)
        res = {}
        if corpus is not None:
            conv = conventions(tok)
            ids = encode_corpus(tok, corpus, conv)
            res = evaluate(model, ids, max_tokens=args.max_tokens, window=args.window,
                           stride=args.stride, batch=args.batch, quiet=args.quiet, bos=conv.bos)
            res.update(documents=corpus.documents_read, data_sha256=data_sha256)
            if corpus.bad:
                res["skipped"] = dict(corpus.bad)
                print(f"{COMMAND}: {args.text}: {corpus.describe_bad()}", file=sys.stderr)
        if task_list:
            res["tasks"] = tasks.run_tasks(model, tok, task_list, limit=args.limit, num_fewshot=args.num_fewshot,
                                           batch=args.batch, quiet=args.quiet)
    except (UserError, hub.UserError, tasks.TaskError) as e:
        return fail(COMMAND, e)
    if args.json:
        print(json.dumps(res))
        return 0
    if corpus is not None:
        print(f"ppl {res['ppl']:.4f}  nll {res['nll']:.5f}  tokens {res['tokens']}  ({res['seconds']:.1f} s)")
    for name, m in res.get("tasks", {}).items():
        shown = "  ".join(f"{k} {v:.4f}" for k, v in m.items() if k != "n" and "stderr" not in k)
        print(f"{name}: {shown}  n {m.get('n', '?')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
