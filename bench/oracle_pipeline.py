"""Benchmark the PyTorch oracle's full LESA expansion (the notebook pipeline).

    PYTHONPATH=python python bench/oracle_pipeline.py CKPT [OUT] --target-layers N [--epochs 10] [--fill layer0] [--threads N]

Prints one JSON object on stdout: wall time (with and without the Python/torch
start-up), per-phase seconds (load, svd, train, predict, write; svd/train/predict
summed over the seven weight types) and peak RSS (getrusage ru_maxrss of this
process). Without OUT the checkpoint goes to a temporary directory that is removed.
"""
import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import torch  # noqa: E402

from lesa_py.testing import oracle  # noqa: E402


def rss_mb(who=resource.RUSAGE_SELF):
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: KiB


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("out", nargs="?", default=None)
    ap.add_argument("--target-layers", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lam", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fill", choices=["layer0", "mean"], default="layer0")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (default: torch's; 1 is often faster on a busy host)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    rss_import = rss_mb()
    t_import = time.perf_counter() - T_START
    tmp = None
    out = a.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix="lesa-oracle-")
        out = os.path.join(tmp, "out")
    try:
        t0 = time.perf_counter()
        res = oracle.expand(a.ckpt, out, a.target_layers, epochs=a.epochs, lam=a.lam, seed=a.seed, fill=a.fill)
        wall = time.perf_counter() - t0
        out_bytes = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    print(json.dumps({
        "tool": "lesa-oracle (PyTorch, notebook pipeline)",
        "ckpt": os.path.abspath(a.ckpt),
        "target_layers": a.target_layers,
        "new_layers": res["new_layers"],
        "options": {"epochs": a.epochs, "lambda": a.lam, "seed": a.seed, "fill": a.fill},
        "wall_s": round(wall, 3),
        "wall_with_startup_s": round(time.perf_counter() - T_START, 3),
        "startup_s": round(t_import, 3),
        "phases_s": {k: round(v, 3) for k, v in res["timings"].items()},
        "peak_rss_mb": round(rss_mb(), 1),
        "rss_after_import_mb": round(rss_import, 1),
        "out_bytes": out_bytes,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }, indent=1))


if __name__ == "__main__":
    main()
