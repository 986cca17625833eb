"""One linear layer's forward and backward, f32 vs bf16 autocast, on the CPU (issue 12):
isolates why bf16 CPT is slow or fast on a machine. `python bench/bf16_matmul.py`."""
import time, torch
torch.set_num_threads(2)
x = torch.randn(2048, 576, requires_grad=True)
w = torch.randn(1536, 576, requires_grad=True)
def run(bf16):
    t = time.perf_counter()
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
    with ctx:
        y = torch.nn.functional.linear(x, w)
    t1 = time.perf_counter()
    y.float().sum().backward()
    return t1 - t, time.perf_counter() - t1
for bf16 in (False, True, False, True):
    f, b = run(bf16)
    print(("bf16" if bf16 else "f32 "), f"forward {f*1e3:.1f} ms backward {b*1e3:.1f} ms  (2048x576 @ 576x1536)")
