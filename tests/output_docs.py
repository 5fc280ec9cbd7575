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
