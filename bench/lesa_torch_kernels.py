"""The torch path's compute at Llama-3-8B shapes on one GPU, without the CLI or any I/O:
marginal time per predictor step (CUDA graph and eager), the Gram, eigh and coefficients of
one gate_proj-shaped type, and the CPU shuffle of one epoch.

    python3 bench/lesa_torch_kernels.py        (PYTHONPATH=python; needs a CUDA GPU)

Figures: bench/results/lesa-shapes.md, "LESA on a GPU".
"""
from __future__ import annotations

import os
import time

import torch

from lesa_py import lesa_torch as lt


def timed(f):
    torch.cuda.synchronize()
    t = time.time()
    r = f()
    torch.cuda.synchronize()
    return r, time.time() - t


def step_ms(rank: int, cols: int, graphs: str) -> float:
    """Marginal ms per step: (time of 1800 steps - time of 200) / 1600, so init and capture cancel."""
    os.environ["LESA_TORCH_CUDA_GRAPHS"] = graphs
    V = torch.randn(32, rank, cols, device="cuda") * 0.01
    t = [timed(lambda: lt.train(V, list(range(1, 31)), steps=n, batch=64, lr=1e-3, weight_decay=0.01, lam=5e-4,
                                hidden=256, seed=3))[1] for n in (200, 1800)]
    return (t[1] - t[0]) / 1600 * 1e3


def main() -> None:
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    for rank, cols in ((4096, 4096), (14336, 4096), (4096, 14336)):
        print(f"step rank {rank} cols {cols}: graph {step_ms(rank, cols, '1'):.3f} ms, eager {step_ms(rank, cols, '0'):.3f} ms")
    t = time.time()
    next(lt.epoch_orders(3, 14336 * 30))
    print(f"shuffle of one gate epoch (430080 samples), CPU: {time.time() - t:.2f} s")
    W = torch.randn(14336, 4096, device="cuda") * 0.02
    G, t = timed(lambda: lt.gram(iter([W] * 32), 14336, "cuda"))
    print(f"gram of 32 gate layers: {t:.2f} s")
    (U, S), t = timed(lambda: lt.eig_descending(G, 14336))
    print(f"eigh n=14336 f64: {t:.2f} s")
    scale, U32 = lt.coefficient_scale(S, 1e-6), U.float()
    _, t = timed(lambda: [lt.coefficients(U32, scale, W) for _ in range(32)])
    print(f"coefficients of 32 gate layers: {t:.2f} s; peak allocated {torch.cuda.max_memory_allocated() / 1e9:.1f} GB")


if __name__ == "__main__":
    main()
