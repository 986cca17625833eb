"""The native LESA trainer (trainPredictor) against PyTorch, step for step.

Same initial parameters (torch's nn.Linear init, handed over through `init`), same sample
order (the addon's splitmix64 Fisher-Yates shuffle, replayed here), same V: the per-epoch
losses, the trained parameters and the predictions must agree to float32 noise. Covers the
packed [out, in] parameter layout, ReLU, the loss's MSE mean and its norm-term gradient,
AdamW (bias correction, decoupled decay on every parameter, eps), shuffling and the last
partial mini-batch. predictRows is checked against torch's forward on the trained weights.
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lesa_py.testing import oracle
from _cli import ROOT

pytestmark = pytest.mark.usefixtures("single_thread")

NODE = textwrap.dedent("""
    import { readFileSync, writeFileSync } from 'node:fs';
    import { predictRows, trainPredictor } from %s;
    const a = JSON.parse(readFileSync(process.argv[2], 'utf8'));
    const f32 = (p) => { const b = readFileSync(p); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
    const V = f32(a.V);
    const r = await trainPredictor({ V, layers: a.layers, rank: a.rank, cols: a.cols, targets: Int32Array.from(a.targets),
      seed: a.seed, hidden: a.hidden, ...(a.steps ? { steps: a.steps } : { epochs: a.epochs }), batch: a.batch, lr: a.lr,
      weightDecay: a.weightDecay, lambda: a.lambda, init: f32(a.init), threads: 1 });
    if (r.steps !== (a.steps ?? a.epochs * Math.ceil(a.targets.length * a.rank / a.batch))) throw new Error(`steps ${r.steps}`);
    const len = a.rank * a.cols, left = V.subarray(a.left * len, (a.left + 1) * len), right = V.subarray((a.left + 1) * len, (a.left + 2) * len);
    const pred = await predictRows(r.params, a.hidden, a.cols, left, right, a.rank, 1);
    writeFileSync(a.params, r.params); writeFileSync(a.pred, pred);
    console.log(JSON.stringify(Array.from(r.epochLosses)));
""")

M64 = (1 << 64) - 1


class SplitMix64:
    """native/src/mlp.h's generator and its `below` (multiply-shift)."""

    def __init__(self, seed: int):
        self.state = seed & M64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return (self.next() * n) >> 64


def native_order(seed: int, samples: int, epochs: int):
    """The addon's per-epoch shuffles: iota then Fisher-Yates from the end, one stream for all epochs."""
    rng = SplitMix64(seed)
    for _ in range(epochs):
        order = list(range(samples))
        for i in range(samples - 1, 0, -1):
            j = rng.below(i + 1)
            order[i], order[j] = order[j], order[i]
        yield order


def flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# steps=None: 3 epochs. steps=23: two full epochs of 10 batches and 3 batches of a third
# (its own shuffle), i.e. exactly 23 AdamW steps. steps=30 is the same run as 3 epochs.
@pytest.mark.parametrize("lam,wd,steps", [(5e-4, 0.01, None), (0.3, 0.2, None), (5e-4, 0.01, 23), (5e-4, 0.01, 30)])
def test_native_trainer_matches_torch_with_the_same_init_and_order(tmp_path: Path, lam: float, wd: float, steps: int | None):
    layers, rank, cols, hidden, batch, epochs, seed = 7, 37, 24, 32, 16, 3, 11
    targets = [1, 2, 4, 5]  # 148 samples: 9 full mini-batches and one of 4
    g = torch.Generator().manual_seed(5)
    V = (torch.randn(layers, rank, cols, generator=g) * 0.2).contiguous()
    torch.manual_seed(seed)
    model = oracle.Predictor(cols, hidden)
    init = flat(model).numpy().astype(np.float32)

    files = {k: str(tmp_path / f"{k}.f32") for k in ("V", "init", "params", "pred")}
    V.numpy().astype(np.float32).tofile(files["V"])
    init.tofile(files["init"])
    args = dict(files, layers=layers, rank=rank, cols=cols, targets=targets, seed=seed, hidden=hidden, epochs=epochs,
                batch=batch, lr=1e-3, weightDecay=wd, **{"lambda": lam}, left=2, steps=steps)
    (tmp_path / "args.json").write_text(json.dumps(args))
    script = tmp_path / "train.mjs"
    script.write_text(NODE % json.dumps((ROOT / "dist" / "src" / "native" / "index.js").as_uri()))
    p = subprocess.run(["node", str(script), str(tmp_path / "args.json")], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    native_losses = json.loads(p.stdout)
    native = torch.from_numpy(np.fromfile(files["params"], dtype=np.float32))
    native_pred = torch.from_numpy(np.fromfile(files["pred"], dtype=np.float32)).view(rank, cols)

    # The reference: torch's own AdamW and autograd on the oracle's loss, fed the addon's batches.
    X, Y = oracle.training_set(list(V), targets)  # sample s = (targets[s // rank], s % rank), as in the addon
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=wd)
    batches = -(-len(X) // batch)
    budget = steps if steps is not None else epochs * batches
    torch_losses, taken = [], 0
    for order in native_order(seed, len(X), -(-budget // batches)):
        total, n = 0.0, 0
        for b in range(0, len(order), batch):
            if taken == budget:
                break
            idx = torch.tensor(order[b:b + batch])
            opt.zero_grad()
            loss = oracle.lesa_loss(model(X[idx]), Y[idx], lam)
            loss.backward()
            opt.step()
            total, n, taken = total + loss.item(), n + 1, taken + 1
        torch_losses.append(total / n)
    assert taken == budget

    np.testing.assert_allclose(native_losses, torch_losses, rtol=1e-5)
    ref = flat(model)
    assert ((native - ref).norm() / ref.norm()).item() < 1e-5
    assert ((native - torch.from_numpy(init)).norm() / ref.norm()).item() > 1e-2  # it did train
    with torch.no_grad():
        pred = model(torch.cat([V[2], V[3]], dim=1))
    assert ((native_pred - pred).norm() / pred.norm()).item() < 1e-5
