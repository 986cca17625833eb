"""Tests of the PyTorch LESA oracle (python/lesa_py/oracle.py). Fast: tiny synthetic models only."""
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from lesa_py.testing import oracle


def smooth_layers(L=12, out=48, n_in=32, noise=0.01, seed=0):
    """W_i = A + i*B + small noise: layers that change smoothly (linearly) with depth."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(out, n_in, generator=g)
    B = 0.15 * torch.randn(out, n_in, generator=g)
    return [A + i * B + noise * torch.randn(out, n_in, generator=g) for i in range(L)]


def random_layers(L=6, out=16, n_in=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(out, n_in, generator=g) for _ in range(L)]


# ----------------------------------------------------------------------------- decomposition

@pytest.mark.parametrize("shape", [(16, 24), (40, 8)])
def test_decompose_reconstructs_each_layer(shape):
    Ws = random_layers(L=6, out=shape[0], n_in=shape[1])
    U, S, Vs = oracle.decompose(Ws)
    r = min(shape[0], 6 * shape[1])
    assert U.shape == (shape[0], r) and S.shape == (r,)
    assert len(Vs) == 6 and all(V.shape == (r, shape[1]) for V in Vs)
    for W, V in zip(Ws, Vs):
        rec = U @ torch.diag(S) @ V
        assert (rec - W).norm() / W.norm() <= 1e-5
    assert torch.allclose(S, torch.linalg.svdvals(torch.cat(Ws, dim=1)), rtol=1e-5, atol=1e-5)


def test_gram_eigen_route_matches_svd():
    """method.md 2.2: G = sum W_i W_i^T (f64), eigh, S = sqrt(lambda), V_i = diag(1/S) U^T W_i."""
    Ws = random_layers(L=6, out=16, n_in=24)
    U, S, Vs = oracle.decompose(Ws)

    G = sum(W.double() @ W.double().T for W in Ws)
    lam, Ue = torch.linalg.eigh(G)
    lam, Ue = lam.flip(0), Ue.flip(1)  # descending
    Se = lam.clamp_min(0).sqrt()
    Ve = [torch.diag(1 / Se) @ Ue.T @ W.double() for W in Ws]

    assert torch.allclose(Se, S.double(), rtol=1e-4, atol=0)
    sign = torch.sign((Ue * U.double()).sum(0))  # per-component sign of the U columns
    assert torch.all(sign != 0)
    for V, V2 in zip(Vs, Ve):
        assert torch.allclose(V.double(), sign[:, None] * V2, atol=1e-4)


# ----------------------------------------------------------------------------- training

def test_training_set_layout():
    Ws = smooth_layers(L=5, out=8, n_in=4)
    _, _, Vs = oracle.decompose(Ws)
    X, Y = oracle.training_set(Vs)
    r = Vs[0].shape[0]
    assert X.shape == (3 * r, 8) and Y.shape == (3 * r, 4)
    assert torch.equal(X[r:2 * r], torch.cat([Vs[1], Vs[3]], dim=1)) and torch.equal(Y[r:2 * r], Vs[2])
    X2, Y2 = oracle.training_set(Vs, [1, 3])
    assert X2.shape == (2 * r, 8) and torch.equal(Y2[r:], Vs[3])


def test_loss_formula():
    p, t = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    mse = ((p - t) ** 2).mean()
    norm = (p.norm() - t.norm()) ** 2
    assert torch.isclose(oracle.lesa_loss(p, t, 0.1), 0.9 * mse + 0.1 * norm)


def test_training_decreases_loss_and_is_seeded():
    Ws = smooth_layers()
    U, S, Vs = oracle.decompose(Ws)
    m = oracle.train_predictor(Vs, epochs=5, seed=3)
    h = m.loss_history
    assert len(h) == 6 and h[-1] < h[1] < h[0]
    assert [l.out_features for l in (m.fc1, m.fc2, m.fc3)] == [256, 256, 32]
    assert m.fc1.in_features == 64
    m2 = oracle.train_predictor(Vs, epochs=5, seed=3)
    assert m2.loss_history == h
    W = oracle.predict_layer(m, U, S, Vs[4], Vs[6])
    assert W.shape == Ws[5].shape and torch.equal(W, oracle.predict_layer(m2, U, S, Vs[4], Vs[6]))


# ----------------------------------------------------------------------------- leave-one-out

def test_leave_one_out_smooth_model():
    Ws = smooth_layers()
    rows = oracle.leave_one_out(None, ["x"], layers=[4, 7], epochs=30, weights={"x": Ws})
    assert len(rows) == 2 * 4
    for r in rows:
        assert {"type", "layer", "method", "rel_err", "cosine", "norm_ratio"} <= set(r)
        assert r["method"] in oracle.METHODS and r["layer"] in (4, 7)
    by = {(r["layer"], r["method"]): r for r in rows}
    for i in (4, 7):
        lesa, copy, avg, rnd = (by[(i, m)] for m in oracle.METHODS)
        assert lesa["rel_err"] < copy["rel_err"]
        assert lesa["cosine"] > 0.99 and 0.9 < lesa["norm_ratio"] < 1.1
        assert avg["rel_err"] < 0.05  # exact up to noise for a linear-in-depth model
        # size-matched random control: norm matched to the neighbours, uncorrelated
        assert abs(rnd["cosine"]) < 0.1 and rnd["rel_err"] > 1.3
        nb = 0.5 * (Ws[i - 1].norm() + Ws[i + 1].norm()) / Ws[i].norm()
        assert rnd["norm_ratio"] == pytest.approx(nb.item(), rel=1e-4)
        assert copy["rel_err"] == pytest.approx(((Ws[i - 1] - Ws[i]).norm() / Ws[i].norm()).item(), rel=1e-5)
    summ = oracle.summarize(rows)
    assert set(summ["x"]) == set(oracle.METHODS)


def test_leave_one_out_holds_out_target(monkeypatch):
    seen = []
    real = oracle.train_predictor

    def spy(Vs, targets=None, **kw):
        seen.append(list(targets))
        return real(Vs, targets, **kw)

    monkeypatch.setattr(oracle, "train_predictor", spy)
    oracle.leave_one_out(None, ["x"], layers=[3], epochs=1, weights={"x": smooth_layers(L=6)})
    assert seen == [[1, 2, 4]]


# ----------------------------------------------------------------------------- expand

def tiny_llama(path, layers=4):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():  # distinct norm weights per layer so the fill rule is visible
        for i, layer in enumerate(model.model.layers):
            layer.input_layernorm.weight.fill_(1.0 + i)
    model.save_pretrained(path, safe_serialization=True)
    return model


@pytest.mark.parametrize("fill", ["layer0", "mean"])
def test_expand_writes_loadable_checkpoint(tmp_path, fill):
    transformers = pytest.importorskip("transformers")
    src, dst = tmp_path / "src", tmp_path / "dst"
    tiny_llama(src, layers=4)
    res = oracle.expand(str(src), str(dst), target_layers=6, epochs=1, fill=fill)
    assert set(res["timings"]) == {"load", "svd", "train", "predict", "write"}
    # last 2 gaps: 1|2 and 2|3 -> output order 0, 1, new(1,2), 2, new(2,3), 3
    assert res["new_layers"] == [2, 4]
    assert [r["source"] for r in res["layers"]] == [0, 1, 1, 2, 2, 3]
    assert json.load(open(dst / "config.json"))["num_hidden_layers"] == 6

    model, info = transformers.AutoModelForCausalLM.from_pretrained(str(dst), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert len(model.model.layers) == 6
    orig = transformers.AutoModelForCausalLM.from_pretrained(str(src))
    for o, s in [(0, 0), (1, 1), (3, 2), (5, 3)]:
        assert torch.equal(model.model.layers[o].mlp.up_proj.weight, orig.model.layers[s].mlp.up_proj.weight)
    new = model.model.layers[2]
    ln = new.input_layernorm.weight
    assert torch.allclose(ln, torch.full_like(ln, 1.0 if fill == "layer0" else 2.5))
    assert not torch.equal(new.self_attn.q_proj.weight, orig.model.layers[0].self_attn.q_proj.weight)
    assert torch.isfinite(new.mlp.down_proj.weight).all()
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()


def test_load_types_sharded(tmp_path):
    Ws = random_layers(L=3, out=4, n_in=5)
    for i, W in enumerate(Ws):
        save_file({f"model.layers.{i}.self_attn.q_proj.weight": W}, str(tmp_path / f"s{i}.safetensors"))
    json.dump({"weight_map": {f"model.layers.{i}.self_attn.q_proj.weight": f"s{i}.safetensors" for i in range(3)}},
              open(tmp_path / "model.safetensors.index.json", "w"))
    got = oracle.load_types(str(tmp_path), ["q_proj"])
    assert all(torch.equal(a, b) for a, b in zip(got["q_proj"], Ws))


def test_placement():
    assert oracle.placement(32, 48) == list(range(15, 31))  # paper: gaps 15|16 .. 30|31
    with pytest.raises(ValueError):
        oracle.placement(4, 8)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one intra-op thread is fastest and avoids OpenMP spin contention on busy hosts."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
