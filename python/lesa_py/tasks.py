"""Downstream accuracy through lm-evaluation-harness's Python API (`lesa eval --tasks`).

A task is an lm-eval task name (hellaswag, arc_easy, piqa, ... : their data comes from the
hub, so they run where it can be reached or is cached) or the path of a task YAML file in
lm-eval's format (python/tests/tasks/moby_next.yaml: a local multiple-choice set that runs
offline). The model runs as loaded by `lesa_py.eval.load`, with its tokenizer's own special
tokens (BOS where the model adds one), the convention lesa's perplexity uses too.
"""
from __future__ import annotations

from pathlib import Path


class TaskError(Exception):
    """A task that cannot be found or whose data cannot be loaded: one line, exit 2."""


def task_specs(tasks: list[str]) -> list:
    """Names stay names; a YAML path becomes its config dict, with relative data_files
    resolved against the YAML's folder (lm-eval would resolve them from the cwd)."""
    # lm-eval's own loader (includes, !function tags); not exported, but the version is pinned
    from lm_eval.tasks._yaml_loader import load_yaml

    out: list = []
    for t in tasks:
        p = Path(t)
        if p.suffix not in (".yaml", ".yml"):
            out.append(t)
            continue
        if not p.is_file():
            raise TaskError(f"--tasks: task file not found: {t}")
        try:
            cfg = load_yaml(p)
        except Exception as e:  # yaml errors, !function targets that fail to import
            raise TaskError(f"--tasks: cannot read {t}: {e}") from None
        if not isinstance(cfg, dict) or "task" not in cfg:
            raise TaskError(f"--tasks: {t} is not an lm-eval task file (no 'task:' key)")
        files = (cfg.get("dataset_kwargs") or {}).get("data_files")
        if isinstance(files, dict):
            cfg["dataset_kwargs"]["data_files"] = {k: str(p.resolve().parent / v) if isinstance(v, str) else v
                                                    for k, v in files.items()}
        elif isinstance(files, str):
            cfg["dataset_kwargs"]["data_files"] = str(p.resolve().parent / files)
        out.append(cfg)
    return out


def metrics_of(result: dict) -> dict:
    """lm-eval's {"acc,none": x, "acc_stderr,none": s, "alias": ...} -> {"acc": x, "acc_stderr": s}."""
    out = {}
    for k, v in result.items():
        name, _, filt = k.partition(",")
        if filt and isinstance(v, (int, float)):
            out[name if filt == "none" else f"{name},{filt}"] = float(v)
    return out


def run_tasks(model, tokenizer, tasks: list[str], *, limit: int | None = None, num_fewshot: int | None = None,
              batch: int = 1, seed: int = 1234, quiet: bool = True) -> dict:
    """{task: {metric: value, ..., "n": examples scored}} for each task (groups: their members too)."""
    import logging

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    verbosity = "ERROR" if quiet else "WARNING"
    logging.getLogger("lm_eval").setLevel(verbosity)
    specs = task_specs(tasks)
    # indexing lm-eval's thousands of bundled task files takes a while: only when a name needs it
    manager = TaskManager(include_defaults=any(isinstance(t, str) for t in specs))
    unknown = [t for t in specs if isinstance(t, str) and t not in manager.all_tasks]
    if unknown:
        raise TaskError(f"--tasks: unknown lm-eval task {', '.join(unknown)} (a name lm-eval lists, or a task .yaml path)")
    lm = (quiet_lm(HFLM) if quiet else HFLM)(pretrained=model, tokenizer=tokenizer, batch_size=batch)
    try:
        res = simple_evaluate(model=lm, tasks=specs, task_manager=manager, limit=limit, num_fewshot=num_fewshot,
                              log_samples=False, verbosity=verbosity, random_seed=seed, numpy_random_seed=seed,
                              torch_random_seed=seed, fewshot_random_seed=seed, bootstrap_iters=0)
    except (ConnectionError, OSError) as e:  # datasets' hub fetch offline / unreachable, missing data file
        raise TaskError(f"--tasks: cannot load a task's data ({type(e).__name__}: {first_line(e)}); "
                        "hub datasets need the network or a filled HF_HOME cache") from None
    counts = res.get("n-samples", {})
    return {name: {**metrics_of(r), **({"n": counts[name]["effective"]} if name in counts else {})}
            for name, r in res["results"].items()}


def quiet_lm(base):
    """HFLM whose request loops draw no progress bar (lm-eval passes disable=False explicitly)."""
    class Quiet(base):
        def loglikelihood(self, requests, disable_tqdm=False):
            return super().loglikelihood(requests, disable_tqdm=True)

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            return super().loglikelihood_rolling(requests, disable_tqdm=True)

        def generate_until(self, requests, disable_tqdm=False):
            return super().generate_until(requests, disable_tqdm=True)
    return Quiet


def first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
