"""Independent PyTorch oracle for LESA (Yang et al., ACL 2025).

A short, readable re-implementation of the authors' notebook algorithm, used as
the reference for lesa's native implementation (fidelity tests) and as the
baseline pipeline in the benchmark. The spec is docs/method.md (shared docs):

* per weight type, concatenate all layers along the input axis and take one thin
  SVD, ``[W_0 | ... | W_{L-1}] = U diag(S) Vh``; ``V_i`` is layer i's column block
  of ``Vh`` so that ``W_i = U diag(S) V_i`` (method.md 2.1-2.2);
* training set: for every interior layer i and row k, input
  ``[V_{i-1}[k], V_{i+1}[k]]``, target ``V_i[k]`` (2.3);
* MLP ``2*in -> 256 -> 256 -> in`` with ReLU (2.4), loss
  ``(1-lam)*MSE + lam*(||pred||_F - ||target||_F)^2`` per mini-batch (2.5),
  AdamW, shuffled mini-batches (2.6); hidden width, epochs, lambda, lr, weight decay and
  batch default to LESA's as the TypeScript side declares them (`lesa methods --json`,
  src/methods/lesa/options.ts), so the oracle and the product cannot drift apart;
* a new layer between j and j+1 gets ``U diag(S) G([V_j, V_{j+1}])`` (2.7), the
  rest of the layer from layer 0 (notebooks) or the neighbours' mean (2.8), and
  the new layers go one per gap into the last N gaps (2.9).

Layer indices are 0-based everywhere here. Only torch + safetensors are used
(no transformers), weights are handled in float32.

CLI:
    python -m lesa_py.testing.oracle loo CKPT [--types q_proj ...] [--layers 5 15 25] [--epochs 10] [--json]
    python -m lesa_py.testing.oracle expand CKPT OUT --target-layers N [--fill layer0|mean]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from typing import Dict, Iterable, List, Optional, Sequence

import torch
from torch import nn
from safetensors import safe_open
from safetensors.torch import save_file

from ..methods import defaults

LLAMA_TYPES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TYPE_SUFFIX = {
    "q_proj": "self_attn.q_proj.weight",
    "k_proj": "self_attn.k_proj.weight",
    "v_proj": "self_attn.v_proj.weight",
    "o_proj": "self_attn.o_proj.weight",
    "gate_proj": "mlp.gate_proj.weight",
    "up_proj": "mlp.up_proj.weight",
    "down_proj": "mlp.down_proj.weight",
}
LAYER_PREFIX = "model.layers."
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


def _suffix(t: str) -> str:
    """Tensor-name suffix of a weight type: a short name (``q_proj``) or the suffix itself."""
    return TYPE_SUFFIX.get(t, t)


# --------------------------------------------------------------------------- I/O

def _weight_files(ckpt_dir: str) -> List[str]:
    """The safetensors files of a checkpoint (single file or sharded with an index)."""
    index = os.path.join(ckpt_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            names = sorted(set(json.load(f)["weight_map"].values()))
        return [os.path.join(ckpt_dir, n) for n in names]
    files = sorted(n for n in os.listdir(ckpt_dir) if n.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors files in {ckpt_dir}")
    return [os.path.join(ckpt_dir, n) for n in files]


def _tensor_locations(ckpt_dir: str) -> Dict[str, str]:
    loc = {}
    for path in _weight_files(ckpt_dir):
        with safe_open(path, framework="pt") as f:
            for k in f.keys():
                loc[k] = path
    return loc


def _num_layers(ckpt_dir: str, names: Iterable[str]) -> int:
    cfg = os.path.join(ckpt_dir, "config.json")
    if os.path.exists(cfg):
        with open(cfg) as f:
            n = json.load(f).get("num_hidden_layers")
        if n:
            return int(n)
    return 1 + max(int(m.group(1)) for m in map(_LAYER_RE.match, names) if m)


def load_types(ckpt_dir: str, types: Sequence[str] = LLAMA_TYPES) -> Dict[str, List[torch.Tensor]]:
    """``{type: [W_0, ..., W_{L-1}]}`` (float32, HF ``[out, in]`` layout) read with safetensors."""
    loc = _tensor_locations(ckpt_dir)
    L = _num_layers(ckpt_dir, loc)
    out: Dict[str, List[torch.Tensor]] = {}
    handles = {}
    try:
        for t in types:
            Ws = []
            for i in range(L):
                name = f"{LAYER_PREFIX}{i}.{_suffix(t)}"
                if name not in loc:
                    raise KeyError(f"{name} not in {ckpt_dir}")
                p = loc[name]
                if p not in handles:
                    handles[p] = safe_open(p, framework="pt").__enter__()
                Ws.append(handles[p].get_tensor(name).to(torch.float32))
            out[t] = Ws
    finally:
        for h in handles.values():
            h.__exit__(None, None, None)
    return out


# --------------------------------------------------------------------------- LESA core

def decompose(Ws: Sequence[torch.Tensor]):
    """Thin SVD of ``[W_0 | ... | W_{L-1}]`` (concatenated along the input axis).

    Returns ``(U [out, r], S [r], Vs)`` with ``Vs[i]`` of shape ``[r, in]`` and
    ``W_i == U @ diag(S) @ Vs[i]``.
    """
    n_in = Ws[0].shape[1]
    W = torch.cat([w.to(torch.float32) for w in Ws], dim=1)
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    Vs = [v.contiguous() for v in torch.split(Vh, n_in, dim=1)]
    return U, S, Vs


class Predictor(nn.Module):
    """The notebooks' SimpleNN: Linear(2*in, h) - ReLU - Linear(h, h) - ReLU - Linear(h, in)."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(2 * n_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, n_in)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def training_set(Vs: Sequence[torch.Tensor], targets: Optional[Iterable[int]] = None):
    """Stack samples ``([V_{i-1}[k], V_{i+1}[k]], V_i[k])`` for every target layer i and row k."""
    L = len(Vs)
    if targets is None:
        targets = range(1, L - 1)
    targets = list(targets)
    for i in targets:
        if not 1 <= i <= L - 2:
            raise ValueError(f"target layer {i} is not interior (L={L})")
    X = torch.cat([torch.cat([Vs[i - 1], Vs[i + 1]], dim=1) for i in targets], dim=0)
    Y = torch.cat([Vs[i] for i in targets], dim=0)
    return X, Y


def lesa_loss(pred: torch.Tensor, target: torch.Tensor, lam: float) -> torch.Tensor:
    mse = torch.mean((pred - target) ** 2)
    norm = (torch.linalg.norm(pred) - torch.linalg.norm(target)) ** 2
    return (1 - lam) * mse + lam * norm


def paper(name: str, value=None):
    """`value`, else LESA's default for option `name` (the TypeScript catalogue's)."""
    return defaults("lesa")[name] if value is None else value


def train_predictor(Vs: Sequence[torch.Tensor], targets: Optional[Iterable[int]] = None, epochs: Optional[int] = None,
                    lam: Optional[float] = None, lr: Optional[float] = None, batch: Optional[int] = None,
                    hidden: Optional[int] = None, seed: int = 0) -> nn.Module:
    """Fit the per-type predictor on the interior-layer samples (``targets``: default all interior layers).

    The returned module carries ``loss_history``: mean mini-batch loss per epoch
    (``[0]`` is the loss of the untrained model on the whole set, then one per epoch).
    """
    epochs, lam, lr, batch, hidden = (paper(k, v) for k, v in
                                      (("epochs", epochs), ("lambda", lam), ("lr", lr), ("batch", batch), ("hidden", hidden)))
    X, Y = training_set(Vs, targets)
    X, Y = X.to(torch.float32), Y.to(torch.float32)
    torch.manual_seed(seed)  # default Kaiming-uniform init of the three Linear layers
    model = Predictor(Y.shape[1], hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=paper("weightDecay"))
    ds = torch.utils.data.TensorDataset(X, Y)
    gen = torch.Generator().manual_seed(seed)
    # Exactly the batches of DataLoader(ds, batch_size=batch, shuffle=True, generator=gen) (that is a
    # RandomSampler wrapped in a BatchSampler, and each epoch's iterator also draws from `gen`);
    # indexing the TensorDataset with the whole index list skips the per-sample collate: same
    # numbers, much faster.
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(ds, generator=gen), batch, False)
    loader = torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None, generator=gen)
    with torch.no_grad():
        history = [lesa_loss(model(X), Y, lam).item()]
    for _ in range(epochs):
        model.train()
        total, steps = 0.0, 0
        for bx, by in loader:
            opt.zero_grad()
            loss = lesa_loss(model(bx), by, lam)
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        history.append(total / max(steps, 1))
    model.eval()
    model.loss_history = history
    return model


@torch.no_grad()
def predict_layer(model: nn.Module, U: torch.Tensor, S: torch.Tensor, V_left: torch.Tensor,
                  V_right: torch.Tensor) -> torch.Tensor:
    """``W' = U diag(S) G([V_left, V_right])`` (row-wise prediction of the coefficient block)."""
    V = model(torch.cat([V_left, V_right], dim=1))
    return (U * S) @ V


# --------------------------------------------------------------------------- leave-one-layer-out (method.md 4.1)

def _metrics(W_hat: torch.Tensor, W: torch.Tensor) -> dict:
    a, b = W_hat.double().flatten(), W.double().flatten()
    nw, nh = b.norm().item(), a.norm().item()
    return {
        "rel_err": (a - b).norm().item() / nw,
        "cosine": (a @ b).item() / (nh * nw) if nh > 0 else 0.0,
        "norm_ratio": nh / nw,
    }


def random_control(W_left: torch.Tensor, W_right: torch.Tensor, seed: int) -> torch.Tensor:
    """Gaussian matrix of the same shape rescaled to the mean Frobenius norm of the neighbours."""
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(W_left.shape, generator=g, dtype=torch.float32)
    target = 0.5 * (W_left.norm() + W_right.norm())
    return R * (target / R.norm())


METHODS = ("lesa", "copy", "average", "random")


def leave_one_out(ckpt_dir, types: Sequence[str] = LLAMA_TYPES, layers: Optional[Sequence[int]] = None,
                  epochs: Optional[int] = None, lam: Optional[float] = None, seed: int = 0, weights=None, log=None) -> List[dict]:
    """Leave-one-layer-out predictability (method.md 4.1).

    For each interior layer i (0-based, 1..L-2, or the given subset) and type, the
    predictor is trained on all interior targets except i, then predicts W_i from
    W_{i-1} and W_{i+1}. NOTE: the SVD basis (U, S) is computed once per type over
    ALL layers, so it includes layer i (the model's own basis, as the spec allows);
    only the training samples whose target is layer i are held out.

    Returns rows ``{type, layer, method, rel_err, cosine, norm_ratio}`` for methods
    lesa, copy (W_{i-1}), average ((W_{i-1}+W_{i+1})/2) and random (seeded gaussian
    rescaled to the neighbours' mean Frobenius norm). ``weights``: optional
    pre-loaded ``{type: [W_i]}`` instead of reading ``ckpt_dir``.
    """
    types = list(types)
    rows = []
    bases = {}  # one SVD per type over ALL layers (includes the held-out layer)
    for t in types:
        Ws = weights[t] if weights is not None else load_types(ckpt_dir, [t])[t]
        bases[t] = (Ws, *decompose(Ws))
    L = len(bases[types[0]][0])
    lay = list(range(1, L - 1)) if layers is None else list(layers)
    for i in lay:  # layers outer, types inner: partial runs still cover every type
        if not 1 <= i <= L - 2:
            raise ValueError(f"layer {i} is not interior (L={L})")
        for ti, t in enumerate(types):
            Ws, U, S, Vs = bases[t]
            t0 = time.perf_counter()
            model = train_predictor(Vs, [j for j in range(1, L - 1) if j != i], epochs=epochs, lam=lam, seed=seed)
            preds = {
                "lesa": predict_layer(model, U, S, Vs[i - 1], Vs[i + 1]),
                "copy": Ws[i - 1],
                "average": 0.5 * (Ws[i - 1] + Ws[i + 1]),
                "random": random_control(Ws[i - 1], Ws[i + 1], seed * 1_000_003 + 1000 * ti + i),
            }
            dt = time.perf_counter() - t0
            for m, W_hat in preds.items():
                rows.append({"type": t, "layer": i, "method": m, **_metrics(W_hat, Ws[i]),
                             **({"train_s": dt, "final_loss": model.loss_history[-1]} if m == "lesa" else {})})
            if log:
                log(json.dumps(rows[-4:]))
    return rows


def summarize(rows: Sequence[dict]) -> Dict[str, Dict[str, dict]]:
    """Per type and method: mean rel_err / cosine / norm_ratio over the evaluated layers."""
    out: Dict[str, Dict[str, dict]] = {}
    for t in dict.fromkeys(r["type"] for r in rows):
        out[t] = {}
        for m in METHODS:
            sel = [r for r in rows if r["type"] == t and r["method"] == m]
            if sel:
                out[t][m] = {k: sum(r[k] for r in sel) / len(sel) for k in ("rel_err", "cosine", "norm_ratio")}
    return out


# --------------------------------------------------------------------------- expansion (method.md 2.7-2.9)

def placement(L: int, target_layers: int) -> List[int]:
    """Gaps j|j+1 (left index j) receiving one new layer each: the last N = target-L gaps."""
    n = target_layers - L
    if not 1 <= n <= L - 1:
        raise ValueError(f"target_layers={target_layers}: need 1..{L - 1} new layers for L={L} (one per gap)")
    return list(range(L - 1 - n, L - 1))


def _layer_tensors(sd: Dict[str, torch.Tensor], i: int) -> Dict[str, torch.Tensor]:
    p = f"{LAYER_PREFIX}{i}."
    return {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}


def expand(ckpt_dir: str, out_dir: str, target_layers: int, epochs: Optional[int] = None, lam: Optional[float] = None,
           seed: int = 0, fill: str = "layer0", types: Sequence[str] = LLAMA_TYPES) -> dict:
    """Notebook pipeline: write an HF checkpoint with ``target_layers`` layers to ``out_dir``.

    One predicted layer goes into each of the last N gaps; its seven projections come
    from the per-type predictors (trained on all interior layers), its other tensors
    (RMSNorm weights, biases) from layer 0 (``fill='layer0'``, the notebooks) or the
    mean of its two neighbours (``fill='mean'``). Returns ``{"timings": {phase: s}, "layers": [...]}``.
    """
    epochs, lam = paper("epochs", epochs), paper("lambda", lam)
    if fill not in ("layer0", "mean"):
        raise ValueError("fill must be 'layer0' or 'mean'")
    timings = {"load": 0.0, "svd": 0.0, "train": 0.0, "predict": 0.0, "write": 0.0}
    t0 = time.perf_counter()
    sd: Dict[str, torch.Tensor] = {}
    metadata = None
    for path in _weight_files(ckpt_dir):
        with safe_open(path, framework="pt") as f:
            metadata = metadata or f.metadata()
            for k in f.keys():
                sd[k] = f.get_tensor(k)
    with open(os.path.join(ckpt_dir, "config.json")) as f:
        config = json.load(f)
    L = int(config["num_hidden_layers"])
    gaps = placement(L, target_layers)
    timings["load"] += time.perf_counter() - t0

    predicted: Dict[int, Dict[str, torch.Tensor]] = {j: {} for j in gaps}
    for t in types:
        suffix = _suffix(t)
        Ws = [sd[f"{LAYER_PREFIX}{i}.{suffix}"].to(torch.float32) for i in range(L)]
        t0 = time.perf_counter()
        U, S, Vs = decompose(Ws)
        t1 = time.perf_counter()
        model = train_predictor(Vs, epochs=epochs, lam=lam, seed=seed)
        t2 = time.perf_counter()
        for j in gaps:
            predicted[j][suffix] = predict_layer(model, U, S, Vs[j], Vs[j + 1]).to(Ws[0].dtype)
        t3 = time.perf_counter()
        timings["svd"] += t1 - t0
        timings["train"] += t2 - t1
        timings["predict"] += t3 - t2

    t0 = time.perf_counter()
    out_sd: Dict[str, torch.Tensor] = {k: v for k, v in sd.items() if not _LAYER_RE.match(k)}
    layers = []
    layer0 = _layer_tensors(sd, 0)

    def emit(tensors: Dict[str, torch.Tensor], origin: dict):
        o = len(layers)
        for name, v in tensors.items():
            out_sd[f"{LAYER_PREFIX}{o}.{name}"] = v.contiguous()
        layers.append({"out": o, **origin})

    for j in range(L):
        emit(_layer_tensors(sd, j), {"kind": "original", "source": j, "how": f"original {j}"})
        if j in predicted:
            left, right = _layer_tensors(sd, j), _layer_tensors(sd, j + 1)
            new = {}
            for name in left:
                if name in predicted[j]:
                    new[name] = predicted[j][name].to(left[name].dtype)
                elif fill == "layer0":
                    new[name] = layer0[name].clone()
                else:
                    new[name] = (0.5 * (left[name].float() + right[name].float())).to(left[name].dtype)
            emit(new, {"kind": "new", "source": j, "between": [j, j + 1], "how": f"LESA({j},{j + 1})"})
    assert len(layers) == target_layers

    os.makedirs(out_dir, exist_ok=True)
    # Grow per-layer config lists (e.g. layer_types), new entries copied from the left neighbour.
    for k, v in list(config.items()):
        if isinstance(v, list) and len(v) == L:
            config[k] = [v[r["source"]] for r in layers]
    config["num_hidden_layers"] = target_layers
    save_file(out_sd, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt", **(metadata or {})})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for name in os.listdir(ckpt_dir):  # tokenizer, generation config, ...
        src = os.path.join(ckpt_dir, name)
        if (os.path.isfile(src) and name != "config.json" and not name.endswith(".safetensors")
                and name not in ("model.safetensors.index.json", "lesa.json")):
            shutil.copyfile(src, os.path.join(out_dir, name))
    new_layers = [r["out"] for r in layers if r["kind"] == "new"]
    with open(os.path.join(out_dir, "oracle.json"), "w") as f:
        json.dump({"method": "lesa-oracle", "options": {"targetLayers": target_layers, "epochs": epochs,
                                                        "lambda": lam, "seed": seed, "fill": fill},
                   "source_layers": L, "target_layers": target_layers, "layers": layers,
                   "new_layers": new_layers}, f, indent=1)
    timings["write"] += time.perf_counter() - t0
    return {"timings": timings, "layers": layers, "new_layers": new_layers}


# --------------------------------------------------------------------------- CLI

def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lesa_py.testing.oracle", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lo = sub.add_parser("loo", help="leave-one-layer-out predictability (method.md 4.1)")
    lo.add_argument("ckpt")
    lo.add_argument("--types", nargs="+", default=list(LLAMA_TYPES))
    lo.add_argument("--layers", nargs="+", type=int, default=None, help="0-based interior layers (default: all)")
    lo.add_argument("--epochs", type=int, default=None, help="default: LESA's")
    lo.add_argument("--lam", type=float, default=None, help="default: LESA's")
    lo.add_argument("--seed", type=int, default=0)
    lo.add_argument("--json", action="store_true", help="print JSON (rows + summary) on stdout")
    lo.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ex = sub.add_parser("expand", help="notebook expansion pipeline -> HF checkpoint")
    ex.add_argument("ckpt")
    ex.add_argument("out")
    ex.add_argument("--target-layers", type=int, required=True, help="total layers after expansion")
    ex.add_argument("--epochs", type=int, default=None, help="default: LESA's")
    ex.add_argument("--lam", type=float, default=None, help="default: LESA's")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--fill", choices=["layer0", "mean"], default="layer0")
    ex.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    a = ap.parse_args(argv)
    a.epochs, a.lam = paper("epochs", a.epochs), paper("lambda", a.lam)
    if a.threads:
        torch.set_num_threads(a.threads)

    if a.cmd == "loo":
        t0 = time.perf_counter()
        log = (lambda s: print(s, file=sys.stderr, flush=True))
        rows = leave_one_out(a.ckpt, a.types, a.layers, epochs=a.epochs, lam=a.lam, seed=a.seed, log=log)
        summ = summarize(rows)
        secs = time.perf_counter() - t0
        if a.json:
            json.dump({"basis_includes_target": True, "epochs": a.epochs, "lambda": a.lam, "seed": a.seed,
                       "seconds": secs, "rows": rows, "summary": summ}, sys.stdout, indent=1)
            print()
        else:
            layers = sorted({r["layer"] for r in rows})
            print(f"leave-one-layer-out, layers {layers}, epochs {a.epochs}, lambda {a.lam}, seed {a.seed}; "
                  f"SVD basis includes the held-out layer; {secs:.1f}s")
            print(f"{'type':10s} {'method':8s} {'rel_err':>8s} {'cosine':>8s} {'norm':>7s}")
            for t, ms in summ.items():
                for m, v in ms.items():
                    print(f"{t:10s} {m:8s} {v['rel_err']:8.4f} {v['cosine']:+8.4f} {v['norm_ratio']:7.3f}")
    else:
        res = expand(a.ckpt, a.out, a.target_layers, epochs=a.epochs, lam=a.lam, seed=a.seed, fill=a.fill)
        print(json.dumps({"out": a.out, "new_layers": res["new_layers"], "timings": res["timings"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
