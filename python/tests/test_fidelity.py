"""Fidelity: lesa's native LESA against the PyTorch oracle of the notebook algorithm
(python/lesa_py/oracle.py), same data, same hyper-parameters, both seeded. The full
comparison over every type is bench/fidelity.py; here the cheap types run in CI."""
from __future__ import annotations

import json

import pytest

from lesa_py.testing import oracle
from _cli import lesa

TYPES = ["k_proj", "v_proj"]
LAYER = 15


@pytest.fixture(scope="module")
def both(fx):
    src = fx("smollm2-135m")
    p = lesa("analyze", src, "--types", ",".join(TYPES), "--layers", str(LAYER), "--epochs", "10", "--json", "--quiet")
    ours = {(r["type"], r["layer"]): r for r in json.loads(p.stdout)["rows"]}
    ref = {}
    for r in oracle.leave_one_out(str(src), TYPES, [LAYER], epochs=10, lam=5e-4, seed=0):
        ref.setdefault((r["type"], r["layer"]), {})[r["method"]] = r
    return ours, ref


@pytest.mark.parametrize("type_", TYPES)
def test_leave_one_out_error_within_5_percent_of_the_oracle(both, type_):
    ours, ref = both
    a = ours[(type_, LAYER)]["lesa"]["relError"]
    b = ref[(type_, LAYER)]["lesa"]["rel_err"]
    assert abs(a - b) / b <= 0.05, f"{type_}: lesa {a:.4f} vs oracle {b:.4f}"


@pytest.mark.parametrize("type_", TYPES)
def test_baselines_agree_exactly_enough(both, type_):
    ours, ref = both
    for m in ("copy", "average"):
        assert ours[(type_, LAYER)][m]["relError"] == pytest.approx(ref[(type_, LAYER)][m]["rel_err"], rel=1e-4)
        assert ours[(type_, LAYER)][m]["cosine"] == pytest.approx(ref[(type_, LAYER)][m]["cosine"], abs=1e-4)
