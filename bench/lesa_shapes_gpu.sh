#!/usr/bin/env bash
# LESA on one GPU at a real shape: a synthetic checkpoint (random bf16 weights, real shapes) made
# in $WORK, expanded with `lesa expand --method lesa --device cuda --target-layers 1.5·L --json`;
# prints a markdown row like bench/results/lesa-shapes.md's (phases, total, peak RSS, GPU, peak
# GPU memory) and the per-type phase spans. Needs no setup script: python3 with torch (CUDA),
# safetensors and numpy; node; the built CLI (dist/) and addon (native/build/).
#
#   WORK=/tmp/lesa-gpu bash bench/lesa_shapes_gpu.sh --smoke       # first: llama-3.2-1b, 1 epoch, checks, ~2 min
#   WORK=/tmp/lesa-gpu bash bench/lesa_shapes_gpu.sh               # llama-3-8b 32→48, 10 epochs
#   WORK=/tmp/lesa-gpu bash bench/lesa_shapes_gpu.sh llama-3-8b 1  # SHAPE EPOCHS
#
# Env: WORK (required; everything is written under it, the checkpoints removed at the end unless
# KEEP=1), LESA_PYTHON (default python3), LESA_CLI (default dist/src/cli/bin.js), DEVICE (default
# cuda; DEVICE=cpu-torch with SHAPE llama-tiny checks this script on a machine without a GPU).
# Disk: the 8B run holds the 16 GB input, the 24 GB output and ~7 GB of scratch at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SMOKE=0
if [[ "${1:-}" == --smoke ]]; then SMOKE=1; shift; fi
SHAPE="${1:-$([[ $SMOKE == 1 ]] && echo llama-3.2-1b || echo llama-3-8b)}"
EPOCHS="${2:-$([[ $SMOKE == 1 ]] && echo 1 || echo 10)}"
WORK="${WORK:?set WORK to a scratch directory (everything goes under it)}"
export LESA_PYTHON="${LESA_PYTHON:-python3}"
CLI="${LESA_CLI:-$ROOT/dist/src/cli/bin.js}"
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
SRC="$WORK/synthetic-$SHAPE"
OUT="$WORK/out-$SHAPE"
mkdir -p "$WORK"
cleanup() { rm -rf "$OUT"; [[ "${KEEP:-0}" == 1 ]] || rm -rf "$SRC"; }
trap cleanup EXIT

# Prerequisites, each with the reason it is missing.
command -v node >/dev/null || { echo "node is not on PATH (the CLI is TypeScript run by node >= 20)" >&2; exit 2; }
[[ -f "$CLI" ]] || { echo "$CLI is missing: build the CLI (npx tsc -p tsconfig.json) and bring dist/" >&2; exit 2; }
node --input-type=module -e "await import('$ROOT/dist/src/native/index.js').then((m) => m.defaultThreads())" \
  || { echo "the native addon (native/build/lesa_native.node) does not load here: bring it and its libraries (ldd native/build/lesa_native.node; LD_LIBRARY_PATH)" >&2; exit 2; }
[[ "${DEVICE:-cuda}" != cuda ]] || "$LESA_PYTHON" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'" \
  || { echo "$LESA_PYTHON: torch with a visible CUDA GPU is needed" >&2; exit 2; }

if [[ $SMOKE == 1 && "${DEVICE:-cuda}" == cuda ]]; then
  # The torch trainer and decomposition on cuda against the same code on the CPU (TF32 off). For
  # the first few dozen steps the two agree to float32 noise (H200, 2026-11-30: 1.2e-7 at 40
  # steps); later a ReLU whose input is within noise of 0 can switch on one device and not the
  # other, and the trajectories part (3e-2 at 200 steps there, the loss within 3e-4): compared
  # then by loss only. Graph replay and eager steps give identical bits.
  "$LESA_PYTHON" - <<'EOF'
import os
import torch
from lesa_py import lesa_torch as lt
torch.backends.cuda.matmul.allow_tf32 = False
g = torch.Generator().manual_seed(1)
V = torch.randn(9, 300, 64, generator=g) * 0.2
def run(device, steps, graphs="1"):
    os.environ["LESA_TORCH_CUDA_GRAPHS"] = graphs
    m, losses = lt.train(V.to(device), list(range(1, 8)), steps=steps, batch=64, lr=1e-3, weight_decay=0.01, lam=5e-4, hidden=256, seed=7)
    return m.p.cpu(), losses
(c, _), (a, _), (e, _) = run("cpu", 30), run("cuda", 30), run("cuda", 30, "0")
d = ((c - a).norm() / c.norm()).item()
print(f"smoke: trainer cpu vs cuda, 30 steps: params rel diff {d:.2e}; graph == eager: {torch.equal(a, e)}")
assert d < 1e-5 and torch.equal(a, e), d
(_, lc), (_, lg) = run("cpu", 300), run("cuda", 300)
print(f"smoke: 300 steps, last epoch's loss cpu {lc[-1]:.6g} cuda {lg[-1]:.6g}")
assert abs(lc[-1] - lg[-1]) <= 0.01 * lc[-1]
W = torch.randn(6, 512, 128, generator=g)
U, S = lt.eig_descending(lt.gram(iter(W), 512, "cpu"), 512)
Uc, Sc = lt.eig_descending(lt.gram(iter(W.cuda()), 512, "cuda"), 512)
du, ds = (U - Uc.cpu()).abs().max().item(), ((S - Sc.cpu()).abs().max() / S[0]).item()
print(f"smoke: eig cpu vs cuda: U max diff {du:.2e} (signs fixed), S rel diff {ds:.2e}")
assert ds < 1e-10 and du < 1e-6, (du, ds)
EOF
fi

if [[ ! -f "$SRC/config.json" ]]; then
  echo "making $SRC" >&2
  "$LESA_PYTHON" "$ROOT/bench/make_synthetic.py" "$SHAPE" "$SRC" > "$WORK/make.log" 2>&1 || { tail -n 5 "$WORK/make.log" >&2; exit 1; }
fi
L=$("$LESA_PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['num_hidden_layers'])" "$SRC/config.json")
TARGET=$((L + L / 2))
rm -rf "$OUT"
# Wall time, peak RSS of the CLI and its worker (ru_maxrss of the largest), peak GPU memory (nvidia-smi, sampled).
"$LESA_PYTHON" - "$WORK" node "$CLI" expand "$SRC" -o "$OUT" --method lesa --device "${DEVICE:-cuda}" --target-layers "$TARGET" \
  --epochs "$EPOCHS" --json <<'EOF' || { tail -n 3 "$WORK/events.jsonl" >&2; exit 1; }
import json, resource, subprocess, sys, threading, time
work, cmd = sys.argv[1], sys.argv[2:]
peak, stop = [0], threading.Event()
def sample():
    while not stop.wait(0.5):
        try:
            used = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True, timeout=5).stdout.split()
            peak[0] = max(peak[0], int(used[0]) * 2**20)
        except Exception:
            pass
threading.Thread(target=sample, daemon=True).start()
t0 = time.monotonic()
with open(f"{work}/result.json", "w") as out, open(f"{work}/events.jsonl", "w") as err:
    rc = subprocess.run(cmd, stdout=out, stderr=err).returncode
wall = time.monotonic() - t0
stop.set()
json.dump({"rc": rc, "wall": wall, "rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, "gpuPeak": peak[0]},
          open(f"{work}/time.json", "w"))
sys.exit(rc)
EOF
# lesa verify re-hashes the whole output (24 GB at 8B): in the smoke run, or with VERIFY=1.
[[ $SMOKE == 0 && "${VERIFY:-0}" == 0 ]] || node "$CLI" verify "$OUT" >&2
"$LESA_PYTHON" - "$WORK" "$SHAPE" "$L" "$TARGET" "$EPOCHS" <<'EOF'
import json, sys, time
work, shape, L, target, epochs = sys.argv[1:]
def events():
    for line in open(f"{work}/events.jsonl"):
        try:
            yield json.loads(line)
        except ValueError:
            pass
r, t = json.load(open(f"{work}/result.json")), json.load(open(f"{work}/time.json"))
m = json.load(open(f"{work}/out-{shape}/lesa.json"))["compute"]
alloc = max((e.get("peakMemory", 0) for e in events() if e.get("event") == "phase"), default=0)
phases = ", ".join(f"{k} {v:.0f}" for k, v in r["phases"].items())
gb = lambda b: f"{b / 1e9:.1f}"
print("| date | shape | layers | epochs | machine | phases (s) | total s | peak RSS GB | GPU | peak GPU memory GB (torch allocated / nvidia-smi) |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| {time.strftime('%Y-%m-%d', time.gmtime())} | {shape} | {L}→{target} | {epochs} | --device {m['device']}, torch {m['torch']} "
      f"| {phases} | {t['wall']:.1f} | {gb(t['rss'])} | {m.get('gpu')} | {gb(alloc)} / {gb(t['gpuPeak'])} |")
EOF
echo "per weight type:"
"$LESA_PYTHON" "$ROOT/bench/phase_spans.py" "$WORK/events.jsonl"
