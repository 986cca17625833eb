"""How much of LESA's initial perplexity on SmolLM2 30→45 (--fill layer0, 3 epochs) is the seed?

Full expansions in memory, all seven types predicted by lesa's native trainer (the addon,
via dist/) on the PyTorch oracle's decomposition (torch SVD signs), each new layer's other
tensors from an oracle expansion (identical to lesa's: layer 0's), then perplexity on the
first 1024 Moby-Dick tokens. Arms (comma-separated):
  distinct       native init + shuffle, lesa's per-type seed typeSeed(seed, type)
  shared         native init + shuffle, one seed for every type (as the oracle re-seeds torch per type)
  torchdistinct  torch's nn.Linear init from torch.manual_seed(typeSeed(seed, type)), native shuffle
  torchshared    torch's init from torch.manual_seed(seed) for every type (the oracle's), native shuffle

    PYTHONPATH=python python bench/lesa_seed_lottery.py CKPT ORACLE_OUT TEXT ARMS SEEDS
    e.g. ... smollm2-135m /tmp/oracle-out moby-dick.txt distinct,shared,torchdistinct 0,1,2,3,4,5

ORACLE_OUT: any `bench/oracle_pipeline.py CKPT OUT --target-layers 45 --fill layer0` output (its
predicted projections are all overwritten). Single-threaded (torch and OpenBLAS).
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
from lesa_py.testing import oracle  # noqa: E402
from lesa_py.eval import evaluate, load, tokenize  # noqa: E402

NODE = """
import { readFileSync, writeFileSync } from 'node:fs';
import { trainPredictor } from %s;
const [Vp, L, R, C, initp, seed, epochs, outp] = process.argv.slice(2);
const f32 = (p) => { const b = readFileSync(p); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
const r = await trainPredictor({ V: f32(Vp), layers: +L, rank: +R, cols: +C, seed: +seed, epochs: +epochs,
  targets: Int32Array.from({ length: +L - 2 }, (_, i) => i + 1), threads: 1, init: initp === '-' ? undefined : f32(initp) });
writeFileSync(outp, r.params);
"""


def type_seed(seed: int, t: str) -> int:
    """src/methods/lesa/predictor.ts typeSeed."""
    h = (seed ^ 0x9E3779B9) & 0xFFFFFFFF
    for ch in t:
        h = ((h ^ ord(ch)) * 0x01000193) & 0xFFFFFFFF
    return h


def main():
    ckpt, base, text, arms, seeds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(","), sys.argv[5].split(",")
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="lesa-lottery-"))
    script = tmp / "train.mjs"
    script.write_text(NODE % json.dumps((ROOT / "dist/src/native/index.js").as_uri()))
    W = oracle.load_types(ckpt)
    dec = {t: oracle.decompose(W[t]) for t in oracle.LLAMA_TYPES}
    model, tok = load(base, "cpu")
    sd = model.state_dict()
    ids = tokenize(tok, Path(text).read_text(), 1024)
    L = len(W["q_proj"])
    gaps = oracle.placement(L, 45)
    new_of = {j: j + 1 + n for n, j in enumerate(gaps)}  # output index of the layer after gap j

    def train(t, seed, torch_init_seed):
        U, S, Vs = dec[t]
        V = torch.stack(Vs).contiguous()
        _, R, C = V.shape
        V.numpy().tofile(tmp / "V.f32")
        init = "-"
        if torch_init_seed is not None:
            torch.manual_seed(torch_init_seed)
            init_params = torch.cat([q.detach().flatten() for q in oracle.Predictor(C, 256).parameters()])
            init_params.numpy().tofile(tmp / "init.f32")
            init = str(tmp / "init.f32")
        subprocess.run(["node", str(script), str(tmp / "V.f32"), str(L), str(R), str(C), init, str(seed), "3",
                        str(tmp / "out.f32")], check=True, capture_output=True)
        p = torch.from_numpy(np.fromfile(tmp / "out.f32", dtype=np.float32))
        m, off = oracle.Predictor(C, 256), 0
        with torch.no_grad():
            for q in m.parameters():
                q.copy_(p[off:off + q.numel()].view_as(q))
                off += q.numel()
            for j in gaps:
                sd[f"model.layers.{new_of[j]}.{oracle.TYPE_SUFFIX[t]}"].copy_((U * S) @ m(torch.cat([V[j], V[j + 1]], 1)))

    for s in map(int, seeds):
        row = {"seed": s}
        for a in arms:
            for t in oracle.LLAMA_TYPES:
                ts = type_seed(s, t)
                {"distinct": lambda: train(t, ts, None), "shared": lambda: train(t, s, None),
                 "torchdistinct": lambda: train(t, ts, ts), "torchshared": lambda: train(t, ts, s)}[a]()
            row[a] = round(evaluate(model, ids)["ppl"], 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
