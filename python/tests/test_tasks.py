"""`lesa eval --tasks` (lm-evaluation-harness) on the shipped offline task, checked against
log-likelihoods computed directly with transformers; a hub id from a local cache as the model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from _cli import lesa
from hubcache import populate

TASK = Path(__file__).resolve().parent / "tasks" / "moby_next.yaml"
DOCS = [json.loads(line) for line in (TASK.parent / "moby_next.jsonl").read_text().splitlines()]

pytestmark = pytest.mark.usefixtures("single_thread")


def direct_accuracy(model_dir: Path) -> tuple[float, float, float]:
    """(acc, acc_norm, smallest decision margin) by the harness's definition, computed here:
    score of a choice = sum of log p(continuation tokens | context), the continuation being
    " " + choice, tokens = tokenize(context + " " + choice) past tokenize(context), with the
    tokenizer's own special tokens; acc_norm divides the score by the choice's length in chars."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    hits = hits_norm = 0
    margin = float("inf")
    for d in DOCS:
        ctx = tok(d["context"]).input_ids
        wholes = [tok(d["context"] + " " + choice).input_ids for choice in d["choices"]]
        # one forward for a document's choices, right-padded: causal attention keeps every scored
        # position blind to the padding after it; log-softmax only over the scored rows
        n = max(map(len, wholes))
        with torch.no_grad():
            logits = model(torch.tensor([w + [pad] * (n - len(w)) for w in wholes])).logits[:, len(ctx) - 1:]
        logp = torch.log_softmax(logits.double(), -1)
        scores = [sum(float(logp[k, i - len(ctx), w[i]]) for i in range(len(ctx), len(w))) for k, w in enumerate(wholes)]
        s = torch.tensor(scores)
        norm = s / torch.tensor([float(len(c)) for c in d["choices"]])
        hits += int(s.argmax()) == d["label"]
        hits_norm += int(norm.argmax()) == d["label"]
        margin = min(margin, float(s.sort().values[-1] - s.sort().values[-2]))
    return hits / len(DOCS), hits_norm / len(DOCS), margin


def run_eval(model: str, *extra: str) -> dict:
    out = lesa("eval", model, "--tasks", str(TASK), "--json", "--quiet", "--device", "cpu", *extra)
    return json.loads(out.stdout)["tasks"]["moby_next"]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty hub cache, no network: the shipped task must not need either."""
    # one torch thread in the CLI's process: tiny forwards, and a busy 2-core machine
    for k, v in {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                 "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(k, v)
    return tmp_path / "hf"


def test_tiny_model_by_hub_id_matches_direct_computation(fx, offline):
    src = fx("tiny-llama-f32")
    populate(offline, "lesa-test/tiny-llama", src, ("main",))
    got = run_eval("lesa-test/tiny-llama")
    acc, acc_norm, margin = direct_accuracy(src)
    assert margin > 1e-5, "a near tie would make exact agreement luck"
    assert got["n"] == len(DOCS) == 40
    assert (got["acc"], got["acc_norm"]) == (acc, acc_norm)


def test_smollm2_matches_direct_computation_and_beats_chance(fx, offline):
    src = fx("smollm2-135m")
    got = run_eval(str(src), "--batch", "8")  # lm-eval's padded batches (the tiny test above: one by one)
    acc, acc_norm, margin = direct_accuracy(src)
    assert margin > 1e-5
    assert (got["acc"], got["acc_norm"]) == (acc, acc_norm)
    # a real LM picks the following half-sentence more often than chance (0.25): one-sided
    # binomial tail below 5% (measured: acc 0.400, acc_norm 0.475 on this task)
    tail = sum(math.comb(40, k) * 0.25 ** k * 0.75 ** (40 - k) for k in range(round(got["acc_norm"] * 40), 41))
    assert got["acc"] > 0.25 and tail < 0.05, (got, tail)


def test_bad_task_arguments_are_one_line_exit_2(fx, offline, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_path: json\n")
    missing_data = tmp_path / "nodata.yaml"
    missing_data.write_text(TASK.read_text().replace("moby_next.jsonl", "absent.jsonl").replace("task: moby_next", "task: nodata"))
    for tasks, expect in [(str(tmp_path / "absent.yaml"), "task file not found"), (str(bad), "no 'task:' key"),
                          (str(missing_data), "cannot load a task's data"), (",", "no task given")]:
        p = lesa("eval", str(fx("tiny-llama-f32")), "--tasks", tasks, "--quiet", check=False)
        assert p.returncode == 2, (tasks, p.stderr[-2000:])
        assert expect in p.stderr.splitlines()[0] and "Traceback" not in p.stderr, (tasks, p.stderr)
