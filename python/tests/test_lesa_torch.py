"""LESA on PyTorch (`--device cpu-torch`, the code `--device cuda` runs) against the native addon.

The reference is the addon's own pipeline run piece by piece from Node (gramAccumulate, eigSym,
coefficients, trainPredictor with its own splitmix64 init and order, predictRows, reconstruct),
with one change: U's column signs put in the torch path's convention (largest entry positive),
since eigensolvers pick signs freely and the predictor is not odd. With that, every predicted
layer of `lesa expand --device cpu-torch` must equal the addon's to float32 noise (bf16: to
the output's rounding). The failure cases: no GPU, no torch, a worker that dies.
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

from lesa_py import lesa_torch
from lesa_py.testing import hfcheck
from _cli import ROOT, layers_of, lesa, manifest, tree_hash
from test_lesa import read_all

pytestmark = pytest.mark.usefixtures("single_thread")

DIST = ROOT / "dist" / "src"
NODE = textwrap.dedent("""
    import { readFileSync, writeFileSync } from 'node:fs';
    const n = await import(%(native)s);
    const { typeSeed } = await import(%(predictor)s);
    const { REL_TOL } = await import(%(decompose)s);
    const a = JSON.parse(readFileSync(process.argv[2], 'utf8'));
    const b = readFileSync(a.W), W = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const { layers: L, rows, cols } = a, size = rows * cols, rank = Math.min(rows, L * cols);
    const G = new Float64Array(rows * rows);
    for (let i = 0; i < L; i++) await n.gramAccumulate(G, W.subarray(i * size, (i + 1) * size), rows, cols, 1);
    const { values, vectors } = await n.eigSym(G, rows, 1);
    const U = new Float64Array(rows * rank), S = new Float64Array(rank);
    for (let k = 0; k < rank; k++) {
      S[k] = Math.sqrt(Math.max(values[k], 0));
      let best = 0;
      for (let r = 1; r < rows; r++) if (Math.abs(vectors[r * rows + k]) > Math.abs(vectors[best * rows + k])) best = r;
      const sign = vectors[best * rows + k] < 0 ? -1 : 1;
      for (let r = 0; r < rows; r++) U[r * rank + k] = sign * vectors[r * rows + k];
    }
    const V = new Float32Array(L * rank * cols);
    const U32 = Float32Array.from(U); // the product's route (decompose.ts): f32 coefficients
    for (let i = 0; i < L; i++) V.set(await n.coefficients(U32, S, W.subarray(i * size, (i + 1) * size), rows, rank, cols, REL_TOL, 1), i * rank * cols);
    const targets = Int32Array.from({ length: L - 2 }, (_, i) => i + 1);
    const r = await n.trainPredictor({ V, layers: L, rank, cols, targets, seed: typeSeed(a.seed, a.type), hidden: a.hidden,
      epochs: a.epochs, batch: a.batch, lr: a.lr, weightDecay: a.weightDecay, lambda: a.lambda, threads: 1 });
    const US = new Float32Array(rows * rank);
    for (let i = 0; i < rows * rank; i++) US[i] = U[i] * S[i %% rank];
    const block = (i) => V.subarray(i * rank * cols, (i + 1) * rank * cols);
    const out = [];
    for (const j of a.gaps) {
      const v = await n.predictRows(r.params, a.hidden, cols, block(j), block(j + 1), rank, 1);
      out.push(await n.reconstruct(US, v, rows, rank, cols, 1));
    }
    writeFileSync(a.out, Buffer.concat(out.map((w) => Buffer.from(w.buffer, w.byteOffset, w.byteLength))));
    console.log(JSON.stringify(Array.from(r.epochLosses)));
""") % {k: json.dumps((DIST / p).as_uri()) for k, p in
        (("native", "native/index.js"), ("predictor", "methods/lesa/predictor.js"), ("decompose", "methods/lesa/decompose.js"))}

TRAIN = dict(hidden=32, batch=16, lr=2e-3, weightDecay=0.02, **{"lambda": 1e-3})


def addon_layers(tmp: Path, Ws: torch.Tensor, type_: str, gaps: list[int], seed: int, epochs: int) -> torch.Tensor:
    """The addon's predicted layers of one type (signs in the torch convention), [len(gaps), rows, cols]."""
    L, rows, cols = Ws.shape
    Ws.float().numpy().tofile(tmp / "W.f32")
    args = dict(W=str(tmp / "W.f32"), out=str(tmp / "out.f32"), layers=L, rows=rows, cols=cols, type=type_, gaps=gaps,
                seed=seed, epochs=epochs, **TRAIN)
    (tmp / "args.json").write_text(json.dumps(args))
    (tmp / "ref.mjs").write_text(NODE)
    p = subprocess.run(["node", str(tmp / "ref.mjs"), str(tmp / "args.json")], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    return torch.from_numpy(np.fromfile(tmp / "out.f32", dtype=np.float32)).view(len(gaps), rows, cols)


def expand(src: Path, out: Path, *extra, check=True):
    L = layers_of(src)
    return lesa("expand", src, "-o", out, "--method", "lesa", "--target-layers", L + 2, "--epochs", "2", "--seed", "3",
                "--hidden", "32", "--batch", "16", "--lr", "2e-3", "--weight-decay", "0.02", "--lambda", "1e-3",
                "--threads", "1", "--quiet", *extra, check=check)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("name,tol", [("tiny-llama-f32", 1e-4), ("tiny-qwen3-bf16", 1e-2)])
def test_cpu_torch_expansion_equals_the_addon_pipeline(fx, tmp_path, name, tol):
    src = fx(name)
    out = tmp_path / "out"
    expand(src, out, "--device", "cpu-torch")
    assert lesa("verify", out).returncode == 0
    assert hfcheck.check(out)["ok"]
    m = manifest(out)
    assert m["compute"] == {"device": "cpu-torch", "torch": torch.__version__}
    got, original = read_all(out), read_all(src)
    prefix = m["layer_prefix"]
    new = {l["out"]: l["between"][0] for l in m["layers"] if l["kind"] == "new"}
    for module, type_ in (("self_attn", "q_proj"), ("self_attn", "k_proj"), ("mlp", "down_proj")):
        Ws = torch.stack([original[f"{prefix}{i}.{module}.{type_}.weight"] for i in range(layers_of(src))])
        ref = addon_layers(tmp_path, Ws, type_, sorted(set(new.values())), 3, 2)
        for o, j in new.items():
            ours = got[f"{prefix}{o}.{module}.{type_}.weight"]
            r = ref[sorted(set(new.values())).index(j)].to(ours.dtype)
            assert rel(ours, r) <= tol, (type_, o, rel(ours, r))
            assert rel(ours, Ws[j]) > 0.05  # a prediction, not a copy of a neighbour


def test_the_torch_trainer_is_the_addons_to_float32_noise(tmp_path):
    """Same V, same targets: the torch trainer's epoch losses and predictions equal trainPredictor's."""
    g = torch.Generator().manual_seed(5)
    L, rank, cols = 7, 37, 24
    V = torch.randn(L, rank, cols, generator=g) * 0.2
    mlp, losses = lesa_torch.train(V, [1, 2, 3, 4, 5], steps=3 * -(-5 * rank // 16), batch=16, lr=2e-3, weight_decay=0.02,
                                   lam=0.3, hidden=32, seed=11)
    init = torch.from_numpy(lesa_torch.init_params(cols, 32, 11))
    assert rel(mlp.p, init) > 1e-2  # it trained
    # the addon, through the same harness the expansion test uses, on a "weight" whose decomposition is V
    script = textwrap.dedent(f"""
        import {{ readFileSync }} from 'node:fs';
        const n = await import({json.dumps((DIST / 'native/index.js').as_uri())});
        const b = readFileSync(process.argv[2]), V = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
        const r = await n.trainPredictor({{ V, layers: {L}, rank: {rank}, cols: {cols}, targets: Int32Array.from([1, 2, 3, 4, 5]),
          seed: 11, hidden: 32, epochs: 3, batch: 16, lr: 2e-3, weightDecay: 0.02, lambda: 0.3, threads: 1 }});
        process.stdout.write(JSON.stringify({{ losses: Array.from(r.epochLosses), params: Array.from(r.params) }}));
    """)
    V.numpy().tofile(tmp_path / "V.f32")
    (tmp_path / "t.mjs").write_text(script)
    p = subprocess.run(["node", str(tmp_path / "t.mjs"), str(tmp_path / "V.f32")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    np.testing.assert_allclose(losses, r["losses"], rtol=1e-5)
    assert rel(mlp.p, torch.tensor(r["params"])) < 1e-5


def test_the_sample_order_is_the_addons_shuffle():
    """epoch_orders (vectorised draws) against test_trainer_vs_torch's plain replay of the addon's."""
    from test_trainer_vs_torch import native_order
    for seed, samples, epochs in ((11, 148, 3), (2**63 + 12345, 5000, 2)):
        mine = lesa_torch.epoch_orders(seed, samples)
        assert [next(mine).tolist() for _ in range(epochs)] == list(native_order(seed, samples, epochs))


def test_the_decomposition_reconstructs_and_fixes_signs():
    g = torch.Generator().manual_seed(2)
    Ws = torch.randn(5, 12, 4, generator=g)  # rank min(12, 20) = 12
    G = lesa_torch.gram(iter(Ws), 12, "cpu")
    U, S = lesa_torch.eig_descending(G, 12)
    ref = torch.linalg.svdvals(torch.cat(list(Ws.double()), 1))
    assert torch.allclose(S, ref, rtol=1e-10)
    assert (U.gather(0, U.abs().argmax(0, keepdim=True)) > 0).all()
    scale = lesa_torch.coefficient_scale(S, 1e-6)
    for W in Ws:
        assert rel((U * S) @ lesa_torch.coefficients(U.float(), scale, W).double(), W) < 1e-5


def test_cuda_without_a_gpu_is_one_line_exit_2_and_no_output(fx, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    p = expand(fx("tiny-llama-f32"), out, "--device", "cuda", check=False)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "sees no CUDA GPU" in p.stderr and "--device cpu" in p.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_no_torch_fails_cpu_torch_and_auto_falls_back_to_the_addon(fx, tmp_path):
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else None
    if python is None or subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("no Python without torch here")
    src = fx("tiny-llama-f32")
    env = {"LESA_PYTHON": python}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        p = expand(src, tmp_path / "bad", "--device", "cpu-torch", check=False)
        assert p.returncode == 2 and "torch" in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
        assert not (tmp_path / "bad").exists()
        expand(src, tmp_path / "auto", "--device", "auto")
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    expand(src, tmp_path / "cpu")
    assert tree_hash(tmp_path / "auto").keys() == tree_hash(tmp_path / "cpu").keys()
    a, c = read_all(tmp_path / "auto"), read_all(tmp_path / "cpu")
    assert all(torch.equal(a[k], c[k]) for k in c) and "compute" not in manifest(tmp_path / "auto")


def test_a_type_over_the_memory_budget_is_refused_before_any_work(fx, tmp_path):
    p = expand(fx("tiny-llama-f32"), tmp_path / "out", "--device", "cpu-torch", "--max-memory", "64KiB", check=False)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "needs" in p.stderr and "give a larger --max-memory" in p.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_worker_that_dies_is_one_line_with_its_last_words(fx, tmp_path):
    """A worker that greets, takes the first type's header and dies (as the OOM killer would)."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexec %s -c 'import json, sys\n"
                    "print(json.dumps(dict(event=\"hello\", torch=\"0\", device=\"cpu\", gpu=None, memory=None)), flush=True)\n"
                    "sys.stdin.buffer.readline(); sys.stderr.write(\"Killed by the test\\n\"); sys.exit(137)'\n" % os.environ["LESA_PYTHON"])
    fake.chmod(0o755)
    old = os.environ["LESA_PYTHON"]
    os.environ["LESA_PYTHON"] = str(fake)
    try:
        p = expand(fx("tiny-llama-f32"), tmp_path / "out", "--device", "cpu-torch", check=False)
    finally:
        os.environ["LESA_PYTHON"] = old
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "exit status 137" in p.stderr and "Killed by the test" in p.stderr
    assert not (tmp_path / "out").exists()


def test_cpu_torch_on_an_moe_mixing_dense_and_sparse_layers_learns_each_type_from_the_layers_holding_it(fx, tmp_path):
    """tiny-qwen3moemixed (SSDDDSSS): the dense gate_proj stacks layers 2-4, an expert 0-1 and 5-7;
    new layers after 2 (dense) and 5 (sparse) equal the addon's pipeline over those stacks."""
    src = fx("tiny-qwen3moemixed-f32")
    out = tmp_path / "out"
    expand(src, out, "--device", "cpu-torch", "--after", "2,5")
    assert hfcheck.check(out)["ok"]
    got, original = read_all(out), read_all(src)
    dense_new, sparse_new = manifest(out)["new_layers"]
    for new, suffix, type_, sources, left in ((dense_new, "mlp.gate_proj.weight", "gate_proj", [2, 3, 4], 2),
                                              (sparse_new, "mlp.experts.1.down_proj.weight", "expert1_down_proj", [0, 1, 5, 6, 7], 5)):
        Ws = torch.stack([original[f"model.layers.{i}.{suffix}"] for i in sources])
        ref = addon_layers(tmp_path, Ws, type_, [sources.index(left)], 3, 2)[0]
        ours = got[f"model.layers.{new}.{suffix}"]
        assert rel(ours, ref) <= 1e-4, (type_, rel(ours, ref))
        assert rel(ours, Ws[sources.index(left)]) > 0.05
