"""Shared pytest fixtures: built test checkpoints (built on demand, instant when present)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lesa_py.testing import fixtures  # noqa: E402

TINY = [f"{t}-{d}" for t in fixtures.TINY for d in ("f32", "bf16")]


def pytest_configure(config):
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # scripts/test.sh runs two workers on two cores: one thread each, here (torch) and in the
        # processes the tests start (the lesa CLI's OpenBLAS, torch's OpenMP). Tests whose bytes
        # depend on the thread count pass --threads themselves.
        import torch

        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fx():
    """fx(name) -> Path of a built fixture (building the tiny ones / text if missing)."""
    def get(name: str) -> Path:
        if not fixtures.is_built(name):
            if name == "gemma3-270m":
                pytest.skip("gemma3-270m fixture not built (run scripts/fixtures.sh)")
            fixtures.build([name])
        return fixtures.path(name)
    return get


@pytest.fixture(scope="session")
def moby(fx) -> str:
    return (fx("text") / "moby-dick.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def loaded(fx):
    """loaded(name) -> (f32 model in eval mode, tokenizer), loaded once per test module."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = {}

    def get(name):
        if name not in cache:
            d = fx(name)
            model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
            cache[name] = (model, AutoTokenizer.from_pretrained(d))
        return cache[name]
    return get


@pytest.fixture(scope="module")
def expansion(tmp_path_factory):
    """expansion(src, method, target_layers, *flags) -> Path of `lesa expand src --method method
    --target-layers N --quiet *flags`, run once per module for the same arguments: several tests
    check one output (each its own property). Read-only: a test that changes it must copy it."""
    from _cli import lesa

    root = tmp_path_factory.mktemp("expansion")
    cache: dict[tuple, Path] = {}

    def get(src, method: str, target_layers: int, *flags) -> Path:
        key = (str(src), method, int(target_layers), *map(str, flags))
        if key not in cache:
            out = root / f"out{len(cache)}"
            lesa("expand", src, "-o", out, "--method", method, "--target-layers", target_layers, "--quiet", *flags)
            cache[key] = out
        return cache[key]
    return get


@pytest.fixture(scope="module")
def single_thread():
    """Tiny models: thread start-up/spin-waiting costs more than it saves (and a lot on a
    busy 2-core machine). Use as `pytestmark = pytest.mark.usefixtures("single_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
