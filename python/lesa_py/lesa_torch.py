"""LESA's decomposition, predictor training and reconstruction in PyTorch (`--device cuda|cpu-torch`).

One worker per `lesa expand` run, driven by the TypeScript side (src/methods/lesa/torch.ts), which
stays the orchestrator and the I/O path. Protocol on stdin/stdout: a JSON header line, then raw
float32 little-endian payloads of the sizes the header implies.

  worker -> TS  {"event":"hello","torch":V,"device":"cuda"|"cpu","gpu":NAME|null,"memory":BYTES|null}
  TS -> worker  {"op":"type", type, rows, cols, layers, retain, targets, gaps, steps, batch, lr,
                 weightDecay, lambda, hidden, seed, relTol}  then the L layers (rows x cols f32),
                 and the L layers once more unless `retain` (the worker keeps them between passes)
  worker -> TS  {"event":"phase","phase":P,...} / {"event":"progress","phase":P,"done":D,"total":T,...}
                {"event":"layer","left":J,"bytes":N} then N bytes: the predicted layer J..J+1 (f32)
                {"event":"done","type":T}
  TS -> worker  {"op":"exit"}
  worker -> TS  {"event":"error","message":M,"user":true|false} then exit (2 for user errors)

The math is the addon's (native/src/predictor.cc, mlp.cc, linalg.cc), so that on the CPU the
two agree to float32 noise: the same splitmix64 initial parameters and Fisher-Yates sample order,
the manual forward/backward with the loss reduced in float64, the same float32 AdamW. Only torch
and numpy are imported: this path must run where the evaluation extras are not installed.
"""
from __future__ import annotations

import json
import math
import sys
import time
from typing import BinaryIO, Iterator, List, Optional

import numpy as np
import torch

M64 = (1 << 64) - 1
GAMMA = np.uint64(0x9E3779B97F4A7C15)
INIT_SALT = 0x5851F42D4C957F2D


# --------------------------------------------------------------------------- the addon's random streams

def _mix(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class SplitMix64:
    """native/src/mlp.h's generator, drawn in vectorised blocks (the k-th output is mix(seed + k*gamma))."""

    def __init__(self, seed: int):
        self.state = seed & M64

    def take(self, n: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            k = np.arange(1, n + 1, dtype=np.uint64)
            out = _mix(np.uint64(self.state) + k * GAMMA)
        self.state = (self.state + n * 0x9E3779B97F4A7C15) & M64
        return out

    def below(self, n: np.ndarray) -> np.ndarray:
        """((next() * n) >> 64) per element, n < 2^32, without 128-bit integers."""
        r = self.take(len(n))
        hi, lo = r >> np.uint64(32), r & np.uint64(0xFFFFFFFF)
        return (hi * n + ((lo * n) >> np.uint64(32))) >> np.uint64(32)


def epoch_orders(seed: int, samples: int) -> Iterator[np.ndarray]:
    """The addon's per-epoch shuffles: iota then Fisher-Yates from the end, one stream for all epochs."""
    rng = SplitMix64(seed)
    while True:
        js = rng.below(np.arange(samples, 1, -1, dtype=np.uint64)).tolist()  # draw for i = samples-1 .. 1
        order = list(range(samples))
        i = samples - 1
        for j in js:
            order[i], order[j] = order[j], order[i]
            i -= 1
        yield np.asarray(order, dtype=np.int64)


def init_params(cols: int, hidden: int, seed: int) -> np.ndarray:
    """mlpInit: PyTorch's Linear init U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from splitmix64, packed
    W1[H,2C] b1[H] W2[H,H] b2[H] W3[C,H] b3[C]."""
    rng = SplitMix64((seed ^ INIT_SALT) & M64)
    parts = []
    for count, fan_in in ((hidden * 2 * cols, 2 * cols), (hidden, 2 * cols), (hidden * hidden, hidden), (hidden, hidden),
                          (cols * hidden, hidden), (cols, hidden)):
        bound = 1.0 / math.sqrt(fan_in)
        u = (rng.take(count) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
        parts.append((-bound + 2 * bound * u).astype(np.float32))
    return np.concatenate(parts)


# --------------------------------------------------------------------------- decomposition

def gram(layers: Iterator[torch.Tensor], rows: int, device) -> torch.Tensor:
    G = torch.zeros(rows, rows, dtype=torch.float64, device=device)
    for W in layers:
        W64 = W.to(torch.float64)
        G.addmm_(W64, W64.T)
    return G


def eig_descending(G: torch.Tensor, rank: int):
    """(U [rows, rank], S [rank]) of G = U diag(S^2) U^T, descending. Each column's sign is fixed
    (its largest entry in magnitude positive), so that every device's eigensolver gives the same
    U: the predictor is not odd, and a flipped column would train it on flipped samples."""
    values, vectors = torch.linalg.eigh(G)
    values, U = values.flip(0)[:rank], vectors.flip(1)[:, :rank]
    sign = U.gather(0, U.abs().argmax(0, keepdim=True)).sign()
    U = U * torch.where(sign == 0, torch.ones_like(sign), sign)
    return U.contiguous(), values.clamp(min=0).sqrt()


def coefficient_scale(S: torch.Tensor, rel_tol: float) -> torch.Tensor:
    """1/S, zero where S <= rel_tol * max(S): numerically zero components (decompose.ts REL_TOL)."""
    tol = rel_tol * S.max()
    return torch.where((S > tol) & (S > 0), 1.0 / S, torch.zeros_like(S))


def coefficients(U32: torch.Tensor, scale: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """V = diag(scale) U^T W (rank x cols, float32) as the addon's coefficientsF32 computes it: one
    float32 GEMM of U's float32 copy, then the scaling in float64; zeroed components exactly 0."""
    V = (U32.T @ W).to(torch.float64) * scale[:, None]
    return torch.where(scale[:, None] == 0, torch.zeros_like(V), V).to(torch.float32)


# --------------------------------------------------------------------------- the predictor, by hand

class Mlp:
    """Flat float32 parameters (the addon's packing) and the manual forward/backward of mlp.cc."""

    def __init__(self, params: torch.Tensor, cols: int, hidden: int):
        self.p, self.C, self.H = params, cols, hidden
        self.grad = torch.zeros_like(params)
        self.W1, self.b1, self.W2, self.b2, self.W3, self.b3 = self._views(params)
        self.gW1, self.gb1, self.gW2, self.gb2, self.gW3, self.gb3 = self._views(self.grad)

    def _views(self, flat: torch.Tensor):
        C, H = self.C, self.H
        sizes = [(H, 2 * C), (H,), (H, H), (H,), (C, H), (C,)]
        out, at = [], 0
        for s in sizes:
            n = math.prod(s)
            out.append(flat[at:at + n].view(*s))
            at += n
        return out

    def forward(self, X: torch.Tensor):
        a1 = torch.relu(torch.addmm(self.b1, X, self.W1.T))
        a2 = torch.relu(torch.addmm(self.b2, a1, self.W2.T))
        return a1, a2, torch.addmm(self.b3, a2, self.W3.T)

    def backward(self, X, a1, a2, dpred):
        torch.mm(dpred.T, a2, out=self.gW3)
        torch.sum(dpred, 0, out=self.gb3)
        d2 = (dpred @ self.W3).mul_(a2 > 0)
        torch.mm(d2.T, a1, out=self.gW2)
        torch.sum(d2, 0, out=self.gb2)
        d1 = (d2 @ self.W2).mul_(a1 > 0)
        torch.mm(d1.T, X, out=self.gW1)
        torch.sum(d1, 0, out=self.gb1)


def loss_and_grad(pred: torch.Tensor, y: torch.Tensor, lam: float):
    """lesaLoss: the loss (float64 tensor) and d loss / d pred (float32), reduced in float64."""
    p, t = pred.double(), y.double()
    d = p - t
    count = pred.numel()
    sse, pp, tt = (d * d).sum(), (p * p).sum(), (t * t).sum()
    norm_p, norm_t = pp.sqrt(), tt.sqrt()
    gap = norm_p - norm_t
    norm_scale = torch.where(norm_p > 0, lam * 2.0 * gap / norm_p, torch.zeros_like(norm_p))
    dpred = ((1 - lam) * 2.0 / count * d + norm_scale * p).float()
    return (1 - lam) * sse / count + lam * gap * gap, dpred


class AdamW:
    """torch.optim.AdamW in float32 on one flat buffer, in mlp.cc's order of operations: decay
    p *= 1 - lr*wd, then p -= (lr/(1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps). The step count
    lives on the device, so that a step has no host values in it (CUDA graphs replay it)."""

    B1, B2, EPS = 0.9, 0.999, 1e-8

    def __init__(self, p: torch.Tensor, lr: float, weight_decay: float):
        self.p, self.lr, self.decay = p, lr, 1 - lr * weight_decay
        self.m, self.v = torch.zeros_like(p), torch.zeros_like(p)
        self.t = torch.zeros((), dtype=torch.float64, device=p.device)

    def step(self, g: torch.Tensor):
        self.t.add_(1)
        step_size = (self.lr / (1 - torch.pow(self.B1, self.t))).float()
        inv_sqrt_bc2 = torch.rsqrt(1 - torch.pow(self.B2, self.t)).float()
        self.m.mul_(self.B1).add_(g * (1 - self.B1))
        self.v.mul_(self.B2).add_(g * g * (1 - self.B2))
        self.p.mul_(self.decay)
        self.p.sub_((self.m * step_size) / (self.v.sqrt().mul_(inv_sqrt_bc2).add_(self.EPS)))


class Trainer:
    """One AdamW step on a mini-batch of coefficient rows, every operand on the device: the batch
    is row `b` of the epoch's index table (b counts up on the device too), the loss is summed into
    `total`. On CUDA the step is captured once as a graph and replayed: at batch 64 the launch
    overhead of ~40 small kernels, not the arithmetic, would otherwise bound the speed."""

    def __init__(self, V: torch.Tensor, mlp: Mlp, opt: AdamW, batch: int, full: int, lam: float):
        L, rank, C = V.shape
        self.rows, self.mlp, self.opt, self.batch, self.lam, self.C = V.reshape(L * rank, C), mlp, opt, batch, lam, C
        dev = V.device
        self.table = torch.zeros(max(full, 1), batch, 3, dtype=torch.int64, device=dev)  # full batches' row indices
        self.b = torch.zeros(1, dtype=torch.int64, device=dev)
        self.total = torch.zeros((), dtype=torch.float64, device=dev)
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.eager_left = 3 if dev.type == "cuda" and _graphs_wanted() else -1  # warm-up steps before capture

    def _step(self, idx: torch.Tensor):
        n = idx.shape[0]
        got = self.rows.index_select(0, idx.reshape(-1)).view(n, 3 * self.C)
        X = got[:, :2 * self.C]  # [left | right]: a strided view, no copy
        a1, a2, pred = self.mlp.forward(X)
        loss, dpred = loss_and_grad(pred, got[:, 2 * self.C:], self.lam)
        self.mlp.backward(X, a1, a2, dpred)
        self.opt.step(self.mlp.grad)
        self.total.add_(loss)

    def full_step(self):
        if self.graph is not None:
            self.graph.replay()
            return
        if self.eager_left <= 0:
            self._batch()
            return
        # Warm-up steps (real ones) on a side stream, as CUDA graph capture wants, then the capture.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._batch()
        torch.cuda.current_stream().wait_stream(side)
        self.eager_left -= 1
        if self.eager_left == 0:
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):  # recorded, not run
                    self._batch()
                self.graph = graph
            except RuntimeError as e:  # stay eager: slower, same numbers
                sys.stderr.write(f"lesa_torch: CUDA graph capture failed ({e}); training without it\n")
                self.eager_left = -1

    def _batch(self):
        self._step(self.table.index_select(0, self.b).view(self.batch, 3))
        self.b.add_(1)

    def tail_step(self, idx: torch.Tensor):
        self._step(idx)


def _graphs_wanted() -> bool:
    import os
    return os.environ.get("LESA_TORCH_CUDA_GRAPHS", "1") != "0"


def train(V: torch.Tensor, targets: List[int], *, steps: int, batch: int, lr: float, weight_decay: float, lam: float,
          hidden: int, seed: int, progress=None):
    """Fits the predictor on ([V_{i-1}[k], V_{i+1}[k]] -> V_i[k]) for every target i, `steps` AdamW steps.

    V: [L, rank, cols] float32 on the device. Returns (the Mlp, per-epoch mean losses). No host
    sync inside an epoch: the losses are summed on the device and read once per epoch.
    """
    L, rank, C = V.shape
    device = V.device
    samples = len(targets) * rank
    batches, full = -(-samples // batch), samples // batch
    epochs = -(-steps // batches)
    mlp = Mlp(torch.from_numpy(init_params(C, hidden, seed)).to(device), C, hidden)
    trainer = Trainer(V, mlp, AdamW(mlp.p, lr, weight_decay), batch, full, lam)
    tgt = torch.tensor(targets, dtype=torch.int64, device=device)
    losses: List[float] = []
    remaining, done, last = steps, 0, 0.0
    orders = epoch_orders(seed, samples)
    upcoming = next(orders)
    for epoch in range(epochs):
        order = torch.from_numpy(upcoming).to(device)
        layer, k = tgt[order // rank], order % rank
        # Row indices (left, right, target) per sample: a batch's gather lands as [n, 3C].
        index = torch.stack([(layer - 1) * rank + k, (layer + 1) * rank + k, layer * rank + k], 1)
        if full:
            trainer.table.copy_(index[:full * batch].view(full, batch, 3))
        trainer.b.zero_()
        trainer.total.zero_()
        run = min(batches, remaining)
        remaining -= run
        for b in range(run):
            if b < full:
                trainer.full_step()
            else:
                trainer.tail_step(index[full * batch:])
            done += 1
            if progress and time.monotonic() - last > 0.2:
                last = time.monotonic()
                progress(done, steps, epoch + 1, None)
        if epoch + 1 < epochs:  # shuffled on the CPU while the device still works through this epoch
            upcoming = next(orders)
        mean = trainer.total.item() / run
        if not math.isfinite(mean):
            raise UserError(f"the predictor's loss diverged ({'NaN' if math.isnan(mean) else 'Inf'}) in epoch {epoch + 1} "
                            f"of {epochs}; try a smaller --lr")
        losses.append(mean)
        if progress:
            progress(done, steps, epoch + 1, mean)
    return mlp, losses


@torch.no_grad()
def predict(mlp: Mlp, US: torch.Tensor, V_left: torch.Tensor, V_right: torch.Tensor) -> torch.Tensor:
    """W' = U diag(S) G([V_left, V_right]) in float32."""
    return US @ mlp.forward(torch.cat([V_left, V_right], 1))[2]


# --------------------------------------------------------------------------- the worker

class UserError(Exception):
    """Something the user can fix: reported as one line, exit status 2."""


class Channel:
    def __init__(self, rd: BinaryIO, wr: BinaryIO):
        self.rd, self.wr = rd, wr

    def send(self, event: str, payload: Optional[bytes] = None, **fields):
        self.wr.write((json.dumps({"event": event, **fields}) + "\n").encode())
        if payload is not None:
            self.wr.write(payload)
        self.wr.flush()

    def header(self) -> dict:
        line = self.rd.readline()
        if not line:
            raise EOFError
        return json.loads(line)

    def floats(self, rows: int, cols: int) -> torch.Tensor:
        out = np.empty((rows, cols), dtype="<f4")
        view, got = memoryview(out).cast("B"), 0
        while got < len(view):
            n = self.rd.readinto(view[got:])
            if not n:
                raise EOFError("stdin closed inside a payload")
            got += n
        return torch.from_numpy(out)


def pick_device(asked: str) -> torch.device:
    if asked == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"--device {asked}: torch {torch.__version__} sees no CUDA GPU "
                        f"(torch.cuda.is_available() is False); use --device cpu or --device cpu-torch")
    return torch.device("cuda")


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_type(ch: Channel, h: dict, device: torch.device):
    rows, cols, L = h["rows"], h["cols"], h["layers"]
    rank = min(rows, L * cols)
    step = lambda phase: (lambda done, total, **kw: ch.send("progress", phase=phase, done=done, total=total, **kw))
    kept: List[torch.Tensor] = []

    def layers(keep: bool):
        for i in range(L):
            W = ch.floats(rows, cols).to(device)
            if keep:
                kept.append(W)
            yield W
            step("gram")(i + 1, L)

    G = gram(layers(h["retain"]), rows, device)
    sync(device)
    ch.send("phase", phase="eig")
    U, S = eig_descending(G, rank)
    del G
    sync(device)
    step("eig")(1, 1)
    ch.send("phase", phase="coefficients")
    scale = coefficient_scale(S, h["relTol"])
    US = (U * S).to(torch.float32)
    U32 = U.to(torch.float32)
    del U
    V = torch.empty(L, rank, cols, dtype=torch.float32, device=device)
    source = kept if h["retain"] else (ch.floats(rows, cols).to(device) for _ in range(L))
    for i, W in enumerate(source):
        V[i] = coefficients(U32, scale, W)
        if h["retain"]:
            kept[i] = None
        step("coefficients")(i + 1, L)
    del U32, kept
    sync(device)
    ch.send("phase", phase="train", samples=len(h["targets"]) * rank)
    mlp, losses = train(V, h["targets"], steps=h["steps"], batch=h["batch"], lr=h["lr"], weight_decay=h["weightDecay"],
                        lam=h["lambda"], hidden=h["hidden"], seed=h["seed"],
                        progress=lambda done, total, epoch, loss: step("train")(done, total, epoch=epoch,
                                                                              **({} if loss is None else {"loss": loss})))
    sync(device)
    peak = {"peakMemory": torch.cuda.max_memory_allocated(device)} if device.type == "cuda" else {}
    ch.send("phase", phase="predict", steps=h["steps"], finalLoss=losses[-1], **peak)
    for j in h["gaps"]:
        W = predict(mlp, US, V[j], V[j + 1])
        bad = int((~torch.isfinite(W)).sum())
        if bad:
            raise UserError(f"the predicted {h['type']} between layers {j} and {j + 1} holds {bad} NaN/Inf values; "
                            f"try a smaller --lr or fewer --epochs")
        ch.send("layer", W.cpu().numpy().astype("<f4", copy=False).tobytes(), left=j, bytes=W.numel() * 4)
    ch.send("done", type=h["type"], epochLosses=losses)


def serve(ch: Channel, asked: str):
    device = pick_device(asked)
    # Fidelity: float32 GEMMs in float32, not TF32 (the addon's sgemm).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    memory = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None
    ch.send("hello", torch=torch.__version__, device=device.type, gpu=gpu, memory=memory)
    while True:
        try:
            h = ch.header()
        except EOFError:
            return
        if h["op"] == "exit":
            return
        run_type(ch, h, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m lesa_py.lesa_torch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cuda", "cpu", "auto"], required=True)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    ch = Channel(sys.stdin.buffer, sys.stdout.buffer)
    asked = a.device
    if asked == "auto":
        asked = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        serve(ch, asked)
        return 0
    except UserError as e:
        ch.send("error", message=str(e), user=True)
        return 2
    except torch.cuda.OutOfMemoryError as e:
        first = str(e).splitlines()[0] if str(e) else "out of memory"
        ch.send("error", message=f"the GPU ran out of memory ({first}); free the GPU or use --device cpu", user=True)
        return 2
    except BrokenPipeError:
        return 1
    except Exception as e:  # noqa: BLE001 - reported to the TS side, stack on stderr
        import traceback
        traceback.print_exc()
        try:
            ch.send("error", message=f"{type(e).__name__}: {e}", user=False)
        except BrokenPipeError:
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
