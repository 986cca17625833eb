"""f32 vs bf16 autocast CPT step time on CPU, side by side in one process (issue 12).

    python bench/cpt_dtype.py EXPANDED_DIR [--seq-len 512] [--batch 4] [--steps 6] [--threads 2]

EXPANDED_DIR: a `lesa expand` output (lesa.json lists the new layers; only they train, as in
the study). Each round times one optimizer step in f32 and one under bf16 autocast (weights and
AdamW state stay f32, as `lesa train --dtype bf16` does), alternating, after one warm-up step
each, so both see the same machine load. Prints a JSON line per dtype (median/min wall seconds
per step, tokens/s, process CPU seconds per step: less sensitive to other jobs) and the ratios. The numbers are only comparable within one run.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics as st
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from lesa_py.cpt import apply_freeze, lm_loss, load_manifest  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from transformers import AutoConfig, AutoModelForCausalLM

    d = Path(a.model)
    model = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32, use_safetensors=True)
    apply_freeze(model, "original", load_manifest(d), d)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.95))
    vocab = AutoConfig.from_pretrained(str(d)).vocab_size
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (a.batch, a.seq_len + 1), generator=g)

    def step(bf16: bool) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            loss = lm_loss(model, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t, time.process_time() - c

    times = {False: [], True: []}
    for bf16 in (False, True):  # warm-up (allocator, oneDNN kernels)
        w, c = step(bf16)
        print(f"warm-up {'bf16' if bf16 else 'f32'}: {w:.1f} s wall, {c:.1f} s CPU", file=sys.stderr, flush=True)
    for i in range(a.steps):
        for bf16 in (False, True):
            times[bf16].append(step(bf16))
            w, c = times[bf16][-1]
            print(f"step {i} {'bf16' if bf16 else 'f32'}: {w:.1f} s wall, {c:.1f} s CPU", file=sys.stderr, flush=True)
    tokens = a.batch * a.seq_len
    out = {"model": str(d), "layers": model.config.num_hidden_layers, "seq_len": a.seq_len, "batch": a.batch,
           "threads": a.threads, "steps_each": a.steps, "loadavg": [round(v, 2) for v in os.getloadavg()],
           "cpu_flags_amx": "amx_bf16" in Path("/proc/cpuinfo").read_text()}
    for bf16, name in ((False, "f32"), (True, "bf16")):
        ts, cs = [w for w, _ in times[bf16]], [c for _, c in times[bf16]]
        out[name] = {"median_s": round(st.median(ts), 3), "min_s": round(min(ts), 3),
                     "tokens_per_s": round(tokens / st.median(ts), 1), "cpu_s_median": round(st.median(cs), 3)}
    out["bf16_speedup_median"] = round(out["f32"]["median_s"] / out["bf16"]["median_s"], 3)
    out["bf16_cpu_ratio_median"] = round(out["f32"]["cpu_s_median"] / out["bf16"]["cpu_s_median"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
