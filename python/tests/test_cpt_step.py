"""Optimizer steps of `lesa train` (lesa_py.cpt) against plain PyTorch AdamW steps on the same
batches: the frozen (original) layers unchanged bit for bit, the trainable (new) layers equal
to the reference within float32 noise. Two steps, because Adam's first step is lr·sign(g)
whatever the betas or a uniform rescaling of the gradient (the clip) are.

The reference is written from the documented settings (AdamW betas (0.9, 0.95), eps 1e-8,
weight decay on matrices only, global grad-norm clip, the loss of transformers' own
`labels=` path), not from the trainer's code; only the batch is taken from the trainer
(recorded from its sampler), so that both see the same tokens whatever the data path does.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _tiny  # noqa: E402

from lesa_py import cpt  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")

LR, WD, CLIP, STEPS = 3e-3, 0.1, 0.05, 2  # a clip below the grad norm, so that clipping is exercised


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cptstep")
    text = _tiny.make_text(root / "train.txt", n_sentences=400)
    return dict(root=root, text=text, model=_tiny.make_model_dir(root / "model", text), cache=root / "cache")


def load(d):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32, use_safetensors=True)


def trainer_step(tiny, monkeypatch, out: str, grad_accum: int):
    batches = []

    class Recording(cpt.WindowSampler):
        def next_batch(self):
            b = super().next_batch()
            batches.append(b.copy())
            return b

    monkeypatch.setattr(cpt, "WindowSampler", Recording)
    s = cpt.train(dict(model=str(tiny["model"]), train=str(tiny["text"]), out=str(tiny["root"] / out),
                       cache_dir=str(tiny["cache"]), freeze="original", steps=STEPS, seq_len=24, batch=3,
                       grad_accum=grad_accum, lr=LR, min_lr=LR, warmup=0, weight_decay=WD, grad_clip=CLIP,
                       eval_every=0, save_every=0, save_final=True, quiet=True, device="cpu", dtype="f32"))
    assert len(batches) == STEPS * grad_accum, "the trainer's sampler was not recorded (moved? update this test)"
    return load(s["final"]).state_dict(), [torch.from_numpy(b) for b in batches]


def reference_steps(model_dir: Path, batches: list[torch.Tensor], grad_accum: int) -> dict:
    model = load(model_dir)
    model.train()
    new = tuple(f"model.layers.{i}." for i in _tiny.NEW_LAYERS)
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith(new))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": WD},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.95), eps=1e-8)
    for step in range(STEPS):
        for x in batches[step * grad_accum:(step + 1) * grad_accum]:
            (model(input_ids=x, labels=x).loss / grad_accum).backward()
        total = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)).item()
        assert total > CLIP, "pick a smaller CLIP: clipping must be exercised"
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        opt.zero_grad()
    return model.state_dict()


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_steps_equal_plain_adamw(tiny, monkeypatch, grad_accum):
    got, batches = trainer_step(tiny, monkeypatch, f"run{grad_accum}", grad_accum)
    want = reference_steps(tiny["model"], batches, grad_accum)
    before = load(tiny["model"]).state_dict()
    new = tuple(f"model.layers.{i}." for i in _tiny.NEW_LAYERS)
    assert got.keys() == want.keys()
    moved = 0
    for k in before:
        if not k.startswith(new):
            assert torch.equal(got[k], before[k]), f"frozen {k} changed"
            continue
        step_got, step_want = (got[k] - before[k]).double(), (want[k] - before[k]).double()
        assert step_want.norm() > 0, k
        rel = ((step_got - step_want).norm() / step_want.norm()).item()
        assert rel < 1e-4, f"{k}: update differs from plain AdamW by {rel:.2e} (relative)"
        moved += 1
    assert moved == 2 * 9  # per new Llama layer: 7 projections + 2 norms
