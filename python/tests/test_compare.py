"""`python -m lesa_py.compare`: one small end-to-end run on tiny-llama-f32 (8 -> 12 layers,
lesa / copy / llama-pro), its files, and its numbers checked against the CPT logs and an
independent `lesa_py.eval` call. Plus the pure helpers and the user-error path."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lesa_py import compare

pytestmark = pytest.mark.usefixtures("single_thread")

METHODS = ["lesa", "copy", "llama-pro"]
TASK = Path(__file__).resolve().parent / "tasks" / "moby_next.yaml"
ARGV: list[str] = []  # the module run's command line, for --resume


@pytest.fixture(scope="module")
def run(fx, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    sotu = (fx("text") / "sotu.txt").read_text(encoding="utf-8")
    train = tmp / "train.txt"
    train.write_text(sotu[:40_000], encoding="utf-8")  # tokenising all 10 MB would dominate the test
    out = tmp / "report"
    argv = [str(fx("tiny-llama-f32")), "--target-layers", "12", "--out", str(out), "--methods", ",".join(METHODS),
            "--train", str(train), "--eval", str(fx("text") / "moby-dick.txt"), "--steps", "3", "--eval-every", "1",
            "--seq-len", "16", "--batch", "2", "--eval-tokens", "64", "--eval-max-tokens", "128",
            "--lesa-epochs", "1", "--threads", "1", "--keep-models", "--quiet", "--loss-window", "2",
            "--tasks", str(TASK)]
    import os

    ARGV[:] = argv
    old = os.environ.get("LESA_CACHE_DIR")
    os.environ["LESA_CACHE_DIR"] = str(tmp / "tokens")
    try:
        rc = compare.main(argv)
    finally:
        if old is None:
            os.environ.pop("LESA_CACHE_DIR", None)
        else:
            os.environ["LESA_CACHE_DIR"] = old
    return rc, out, json.loads((out / "results.json").read_text()), fx("text") / "moby-dick.txt"


def _log(out: Path, m: str):
    rows = [json.loads(l) for l in (out / "runs" / m / "log.jsonl").read_text().splitlines() if l.strip()]
    return [r for r in rows if "loss" in r], [r for r in rows if "eval_loss" in r]


def test_files_and_status(run):
    rc, out, res, _ = run
    assert rc == 0
    for f in ("report.md", "results.json", "heldout_loss.png", "train_loss.png", "initial_ppl.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
        if f.endswith(".png"):
            assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(res["runs"]) == METHODS
    assert all(res["runs"][m]["status"] == "ok" for m in METHODS), res["runs"]
    assert "partial" not in res
    for key in ("command", "date", "versions", "machine"):
        assert res[key]
    assert res["versions"]["torch"] and res["versions"]["transformers"]
    assert res["machine"]["nproc"] >= 1 and res["machine"]["mem_total_gib"] > 0
    md = (out / "report.md").read_text()
    assert res["command"] in md and "torch " in md and "nproc" in md
    for m in METHODS:
        assert f"| {m} | 12 |" in md
    assert md.count("| --- |") == 3  # results, timings and downstream accuracy (the module fixture passes --tasks)
    assert "## Downstream accuracy" in md


def test_numbers_match_logs(run):
    _, out, res, _ = run
    s = res["settings"]
    for m in METHODS:
        r = res["runs"][m]
        tr, ev = _log(out, m)
        assert [x["step"] for x in tr] == [1, 2, 3]
        assert [x["step"] for x in ev] == [0, 1, 2, 3]
        assert r["cpt_initial_eval_loss"] == pytest.approx(ev[0]["eval_loss"], abs=1e-12)
        assert r["final_eval_loss"] == pytest.approx(ev[-1]["eval_loss"], abs=1e-12)
        assert r["final_eval_ppl"] == pytest.approx(math.exp(ev[-1]["eval_loss"]), rel=1e-9)
        assert r["final_train_loss"] == pytest.approx(sum(x["loss"] for x in tr[-2:]) / 2, abs=1e-9)
        assert r["initial_ppl"] == pytest.approx(math.exp(r["initial_nll"]), rel=1e-9)
        assert r["tokens"] == 3 * s["batch"] * s["seq_len"]
        assert r["trainable_params"] < r["total_params"]  # --freeze original
        assert len(r["new_layers"]) == 4
    # Every method saw the same training windows: same step-1 batch -> the identity
    # block (llama-pro) and the original differ, but the logged token counts agree.
    assert len({res["runs"][m]["tokens"] for m in METHODS}) == 1


def test_initial_ppl_matches_independent_eval(run):
    _, out, res, moby = run
    from lesa_py.eval import evaluate, load

    text = moby.read_text(encoding="utf-8")
    for m in ("lesa", "copy"):
        model, tok = load(out / "models" / m)
        r = evaluate(model, tok, text, max_tokens=128, window=1024, stride=512)
        assert res["runs"][m]["initial_ppl"] == pytest.approx(r["ppl"], rel=1e-4)


def test_llama_pro_is_function_preserving(run):
    _, _, res, _ = run
    orig, lp = res["original"], res["runs"]["llama-pro"]
    assert lp["initial_ppl"] == pytest.approx(orig["initial_ppl"], rel=1e-4)
    assert lp["cpt_initial_eval_loss"] == pytest.approx(orig["heldout_loss"], rel=1e-4)


def test_task_accuracy_in_results_and_report(run):
    from test_tasks import direct_accuracy

    _, out, res, _ = run
    for m in ("copy", "lesa"):
        acc, acc_norm, _ = direct_accuracy(out / "models" / m)
        assert (res["runs"][m]["tasks"]["moby_next"]["acc"], res["runs"][m]["tasks"]["moby_next"]["acc_norm"]) == (acc, acc_norm)
    # llama-pro preserves the function, so every choice's log-likelihood and hence the accuracy
    assert res["runs"]["llama-pro"]["tasks"] == res["original"]["tasks"]
    report = (out / "report.md").read_text()
    assert "## Downstream accuracy" in report and "moby_next acc (acc_norm), n=40" in report


def test_steps_to_best_baseline(run):
    _, _, res, _ = run
    summ = res["summary"]
    assert summ["best_baseline"] in ("copy", "llama-pro")
    target = summ["best_baseline_final_eval_loss"]
    assert target == min(res["runs"][m]["final_eval_loss"] for m in ("copy", "llama-pro"))
    for m in METHODS:
        r = res["runs"][m]
        assert r["steps_to_best_baseline"] == compare.steps_to_reach(r["eval_curve"], target)
    # the best baseline reaches its own final loss by the last step at the latest
    assert res["runs"][summ["best_baseline"]]["steps_to_best_baseline"] is not None
    assert summ["lesa_minus_best_baseline_eval_loss"] == pytest.approx(
        res["runs"]["lesa"]["final_eval_loss"] - target)


def test_resume_adds_variants_and_keeps_done_runs(run, capsys):
    rc, out, res, _ = run
    spec = "ot-fuse@bottom"
    assert compare.main(ARGV + ["--resume", "--methods", f"copy,{spec}"]) == 0
    new = json.loads((out / "results.json").read_text())
    assert new["methods"] == METHODS + [spec]
    for m in METHODS:
        assert new["runs"][m] == res["runs"][m], f"{m} was re-run instead of kept"
    r = new["runs"][spec]
    assert r["status"] == "ok" and "--placement bottom" in r["expand_command"] and "--method ot-fuse" in r["expand_command"]
    assert r["new_layers"] == [1, 3, 5, 7]  # bottom: after original layers 0..3
    assert r["alignment"]["mlpCosineAfter"] >= r["alignment"]["mlpCosineBefore"]
    assert new["command"].count("python -m lesa_py.compare") == 2
    assert [st["date"] for st in new["stages"]][0] == res["date"] and len(new["stages"]) == 2
    assert all(st["wall_seconds"] > 0 for st in new["stages"])
    total = sum(st["wall_seconds"] for st in new["stages"])
    assert f"2 stages ({total:.0f} s of wall time in all" in (out / "report.md").read_text()
    # another budget must not be mixed into the same report
    assert compare.main(ARGV + ["--resume", "--steps", "4", "--methods", "copy"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_resume_keeps_runs_another_process_wrote_meanwhile(run, tmp_path):
    import copy
    import shutil
    import time
    _, out, _, _ = run
    d = tmp_path / "report"
    shutil.copytree(out, d, ignore=shutil.ignore_patterns("models"))
    mine = json.loads((d / "results.json").read_text())  # what this process loaded at its start
    disk = copy.deepcopy(mine)  # meanwhile another --resume run added a method
    disk["runs"]["ot-fuse@bottom"] = dict(disk["runs"]["llama-pro"], method="ot-fuse@bottom")
    disk["methods"].append("ot-fuse@bottom")
    disk["command"] += "\npython -m lesa_py.compare (the other run)"
    (d / "results.json").write_text(json.dumps(disk))
    mine["runs"]["copy"]["note"] = "re-run by this process"
    compare.write_report(mine, d, time.time(), lambda msg: None, True, ["copy"])
    new = json.loads((d / "results.json").read_text())
    assert new["runs"]["ot-fuse@bottom"]["method"] == "ot-fuse@bottom" and "ot-fuse@bottom" in new["methods"]
    assert new["runs"]["copy"]["note"] == "re-run by this process"
    assert "(the other run)" in new["command"]


def test_method_specs():
    assert compare.parse_spec("lesa") == ("lesa", ["--placement", "top"])
    assert compare.parse_spec("llama-pro+zero-out")[1] == ["--zero-out", "--placement", "top"]
    assert compare.parse_spec("solar") == ("solar", [])
    assert compare.parse_spec("lesa+align+zero-out@uniform") == ("lesa", ["--align", "--zero-out", "--placement", "uniform"])
    assert compare.parse_spec("ot-fuse@after=3:5:5") == ("ot-fuse", ["--after", "3,5,5"])
    assert compare.parse_spec("lesa+predictor-steps=19200+layer0-fill")[1] == [
        "--predictor-steps", "19200", "--fill", "layer0", "--placement", "top"]
    assert compare.parse_spec("lesa+epochs=10")[1] == ["--epochs", "10", "--placement", "top"]
    for bad in ("bogus", "lesa+x", "copy@mid", "copy@after=a:1", "lesa+epochs=0", "lesa+epochs=x", "lesa+seed=3"):
        with pytest.raises(compare.UserError):
            compare.parse_spec(bad)


def test_helpers():
    assert compare.steps_to_reach([(0, 3.0), (5, 2.0), (10, 1.5)], 2.0) == 5
    assert compare.steps_to_reach([(0, 3.0), (5, 2.5)], 2.0) is None
    assert compare.method_target("solar", 30, 45, None)[0] is None
    assert compare.method_target("solar", 18, 27, 26) == (26, "run at 26 layers (--solar-target), not 27")
    assert compare.method_target("solar", 30, 44, None) == (44, "")
    assert compare.method_target("solar", 30, 60, None)[0] is None  # > 2L-2
    assert compare.method_target("stack", 30, 45, None)[0] is None
    assert compare.method_target("stack", 30, 60, None) == (60, "")
    assert compare.method_target("lesa", 30, 45, None) == (45, "")


def test_user_errors(fx, tmp_path, capsys):
    d = str(fx("tiny-llama-f32"))
    assert compare.main([d, "--target-layers", "12", "--out", str(tmp_path), "--methods", "lesa,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert compare.main([d, "--target-layers", "8", "--out", str(tmp_path)]) == 2
    assert "must exceed" in capsys.readouterr().err
    assert compare.main([str(tmp_path), "--target-layers", "12", "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "results.json").exists()
