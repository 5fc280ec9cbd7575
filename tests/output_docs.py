"""Documents as `lifelong unlearn`, `lifelong edit lines` and `lifelong merge` write them
(src/lifelong/unlearn/run.py, src/lifelong/edit/run.py), and their folders: for
tests/test_report_outputs.py and the hostile-file tests (tests/hostile.py)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml


def unlearn_doc(seed: int, forget: float = 10.0, retain: float = 90.0, test: float = 85.0, mia: float = 0.5,
                wall: float = 2.0, **extra) -> dict:
    """A metrics.json as `lifelong unlearn` writes it (src/lifelong/unlearn/run.py)."""
    return {"schema_version": 1, "kind": "unlearn", "complete": True, "method": "ssd",
            "params": {"alpha": 2.0, "lam": 1.0, "batch_size": 64, "label_free": False},
            "source_run": f"/nowhere/run-{seed}", "benchmark": "split-mnist", "source_method": "er", "seed": seed,
            "forget": "classes:3", "forget_count": 6, "forget_digest": "ab", "retain_count": 54, "test_count": 20,
            "before": {"accuracy": {"forget": 95.0, "retain": 95.0, "test": 90.0}, "mia": 0.6},
            "accuracy": {"forget": forget, "retain": retain, "test": test}, "mia": mia, "mia_feature": "entropy",
            "compare_to": None, "wall_seconds": wall, "total_seconds": wall + 1.0,
            "retrain_command": "lifelong run --forget classes:3 --out x", "command": "lifelong unlearn", **extra}


def weights_doc(kind: str, seed: int, class_il: list, params: dict, *, task_il: list | None = None,
                source_runs: list[str] = ("/nowhere/B",), base: str = "/nowhere/A/model.pt", method: str = "lines",
                **extra) -> dict:
    """A metrics.json as `lifelong edit lines` or `lifelong merge` writes it (src/lifelong/edit/run.py)."""
    acc = {"class_il": class_il, "task_il": task_il or class_il}
    return {"schema_version": 1, "kind": kind, "complete": True, "method": method, "params": params, "base": base,
            "source_runs": list(source_runs), "benchmark": "split-mnist", "backbone": "mlp", "seed": seed,
            "task_classes": [[0, 1], [2, 3], [4, 5]], "accuracy": acc,
            "before": {"base": acc, "source_runs": [acc for _ in source_runs]}, "wall_seconds": 0.5,
            "command": f"lifelong {kind}", **extra}


def _both(class_il: list) -> dict:
    """Accuracies of both scenarios: task-IL is class-IL + 5 (hand-checkable)."""
    return {"class_il": list(class_il), "task_il": [v + 5 for v in class_il]}


def rmm_doc(seed: int, per_basis: list[tuple[list, float, float, int]], kept: list, delta: list, factors: list, *,
            per: str = "position", tasks: tuple[int, ...] = (1, 2), adapter_numbers: int | None = 80,
            source_runs: list[str] = ("/nowhere/L",), **extra) -> dict:
    """A metrics.json as `lifelong merge --method rmm` writes it (src/lifelong/edit/rmm_run.py), on
    3 tasks with adapters for ``tasks``: ``per_basis`` holds per k = 1.. (class-IL accuracies,
    ΔW error, factor error, numbers stored); ``kept``, ``delta`` and ``factors`` class-IL
    accuracies (task-IL: each + 5)."""
    entries = [{"basis": k, "accuracy": _both(acc), "stored_numbers": stored,
                "reconstruction_error": {"factors": [f_err] * len(tasks), "delta": [d_err] * len(tasks),
                                         "factors_mean": f_err, "delta_mean": d_err}}
               for k, (acc, d_err, f_err, stored) in enumerate(per_basis, 1)]
    n = len(tasks)
    more = {"adapter_numbers": adapter_numbers} if adapter_numbers is not None else {}
    doc = weights_doc("merge", seed, entries[0]["accuracy"]["class_il"], {
        "basis": 1, "per": per, "lam": 1 / n, "num_adapters": n, "rank": 2, "scaling": 1.0}, method="rmm",
        source_runs=source_runs, base=f"{source_runs[0]}/model.pt", per_basis=entries, kept=_both(kept),
        plain={"lam": 1 / n, "delta": _both(delta), "factors": _both(factors)},
        adapters=[{"run": source_runs[0], "task": t} for t in tasks], **more)
    doc["accuracy"] = entries[0]["accuracy"]
    return {**doc, **extra}


def output_doc(kind: str, seed: int = 0) -> dict:
    """A valid document of each kind (the hostile tests change it: tests/hostile.py)."""
    if kind == "unlearn":
        return unlearn_doc(seed)
    params = {"alpha": 0.5, "beta": 0.5, "num_layers": 2} if kind == "edit" else {"lines": False, "lam": 0.5}
    return weights_doc(kind, seed, [50.0, 60.0, 70.0], params, method="lines" if kind == "edit" else "ties")


def write_output(root: Path, name: str, doc: dict) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(doc))
    (folder / "config.yaml").write_text(yaml.safe_dump({"kind": doc.get("kind")}))
    return folder


def trained_on(root: Path, name: str, tasks: str | None) -> Path:
    """A run folder's config.yaml saying which tasks it trained on (all without ``train_tasks``)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"benchmark": "split-mnist"} | (
        {"train_tasks": tasks} if tasks else {})))
    return folder
