"""A run's folder and the table printed at its end.

A run writes one folder: ``config.yaml`` (the resolved configuration), ``metrics.json`` (schema
version :data:`SCHEMA_VERSION`), ``accuracy_class_il.csv`` and ``accuracy_task_il.csv`` (the
matrices) and ``run.log``; with anytime evaluation also ``anytime.csv`` (the curve) and an
``online`` block in ``metrics.json``. ``metrics.json`` is written last and atomically, and its
``status`` is ``"complete"`` only for a run that finished; a folder without it is unfinished.
"""
from __future__ import annotations

import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from lifelong import metrics
from lifelong.runs.folder import atomic_write
from lifelong.loop import RunResult

SCHEMA_VERSION = 1
def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process and, on CUDA, peak allocated device memory (MiB)."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def versions() -> dict[str, str]:
    from lifelong import __version__

    return {"lifelong": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def _matrix_csv(R: list[list[float]]) -> str:
    if not R:
        return ""
    T = len(R[0])
    lines = ["after_task," + ",".join(f"task_{j}" for j in range(T))]
    lines += [f"{i}," + ",".join(f"{v:.4f}" for v in row) for i, row in enumerate(R)]
    return "\n".join(lines) + "\n"


def anytime_csv(curve: list[dict[str, Any]], num_classes: int) -> str:
    """The anytime curve as CSV: one row per evaluation (``kind``: periodic or task_end), the
    accuracy on the exposed classes and each class's (empty: not exposed or not tested)."""
    lines = ["examples_seen,task,kind,accuracy,exposed_classes," + ",".join(f"class_{c}" for c in range(num_classes))]
    for p in curve:
        cells = [str(p["examples_seen"]), str(p["task"]), p["kind"], _number(p["accuracy"]), str(p["exposed_classes"])]
        lines.append(",".join(cells + [_number(a) for a in p["per_class"]]))
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def build_metrics(result: RunResult, config: dict[str, Any], *, wall_seconds: float, num_tasks: int) -> dict[str, Any]:
    """The content of ``metrics.json``; ``online`` (A_auc, A_last, A_avg, F_last:
    :func:`lifelong.metrics.online_summary`) only for a run with anytime evaluation."""
    complete = result.status == "complete"
    scenarios = {}
    for key, R, b in (("class_il", result.class_il, result.init_class_il), ("task_il", result.task_il, result.init_task_il)):
        summary = metrics.summarize(R, b) if R else dict.fromkeys(
            ["average_accuracy", "average_incremental_accuracy", "forgetting", "backward_transfer", "forward_transfer"])
        scenarios[key] = {**summary, "accuracy_matrix": R, "initial_accuracy": b}
    online = {} if result.anytime is None else {"online": metrics.online_summary(
        result.anytime["curve"], result.anytime["eval_every"], result.anytime["eval_seconds"])}
    return {
        "schema_version": SCHEMA_VERSION,
        "status": result.status,
        "complete": complete,
        "message": result.message,
        "benchmark": config["benchmark"],
        "method": config.get("method_name", config["method"]),
        "params": config.get("params", {}),
        "refresh": config.get("refresh"),
        **({"view_batch": config["view_batch"]} if config.get("view_batch") else {}),
        "seed": config["seed"],
        "num_tasks": num_tasks,
        "tasks_trained": len(result.class_il),
        **scenarios,
        **online,
        "steps": result.steps,
        "skipped_steps": result.skipped_steps,
        "train_seconds": result.train_seconds,
        "wall_seconds": wall_seconds,
        **peak_memory_mb(),
        "versions": versions(),
        "command": " ".join(sys.argv),
    }


def write_config(out: Path, config: dict[str, Any]) -> None:
    atomic_write(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def write_results(out: Path, result: RunResult, metrics_doc: dict[str, Any]) -> None:
    """Matrices first, ``metrics.json`` last, so a complete-looking folder is a complete run."""
    atomic_write(out / "accuracy_class_il.csv", _matrix_csv(result.class_il))
    atomic_write(out / "accuracy_task_il.csv", _matrix_csv(result.task_il))
    if result.anytime is not None:
        curve = result.anytime["curve"]
        atomic_write(out / "anytime.csv", anytime_csv(curve, len(curve[0]["per_class"]) if curve else 0))
    atomic_write(out / "metrics.json", json.dumps(metrics_doc, indent=2) + "\n")


def _fmt(value: float | None, width: int = 7) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.2f}"


def _cell(metrics_doc: dict[str, Any], scenario: str, key: str) -> str:
    """A metric in the table; n/a for one that does not measure its name in this scenario."""
    if (scenario, key) in metrics.NOT_SHOWN:
        return f"{'n/a':>10}"
    return _fmt(metrics_doc[scenario][key], 10)


def format_table(metrics_doc: dict[str, Any], out: Path | None = None) -> str:
    """A readable summary: per-task accuracy after the last task, averages, forgetting, transfer
    (class-IL forward transfer as n/a, :data:`lifelong.metrics.NOT_SHOWN`), time."""
    lines = []
    cil, til = metrics_doc["class_il"], metrics_doc["task_il"]
    T = metrics_doc["num_tasks"]
    title = f"{metrics_doc['benchmark']} | {metrics_doc['method']} | seed {metrics_doc['seed']}"
    if not metrics_doc["complete"]:
        title += f" | INCOMPLETE ({metrics_doc['status']}: {metrics_doc['message']})"
    lines.append(title)
    header = f"{'accuracy (%)':<14}" + "".join(f"{'t' + str(j + 1):>7}" for j in range(T)) + f" |{'avg':>7}"
    lines.append(header)
    lines.append("-" * len(header))
    for name, block in (("class-IL", cil), ("task-IL", til)):
        R = block["accuracy_matrix"]
        last = R[-1] if R else [None] * T
        lines.append(f"{name:<14}" + "".join(_fmt(v) for v in last) + f" |{_fmt(block['average_accuracy'])}")
    lines.append("")
    lines.append(f"{'':<30}{'class-IL':>10}{'task-IL':>10}")
    keys = (("average_incremental_accuracy", "average incremental acc. (%)"), ("forgetting", "forgetting (points)"),
            ("backward_transfer", "backward transfer (points)"), ("forward_transfer", "forward transfer (points)"))
    for key, label in keys:
        lines.append(f"{label:<30}{_cell(metrics_doc, 'class_il', key)}{_cell(metrics_doc, 'task_il', key)}")
    lines += [f"n/a: {why}" for (_, key), why in metrics.NOT_SHOWN.items() if key in dict(keys)]
    online = metrics_doc.get("online")
    if online:
        lines.append("")
        lines.append(f"anytime (%, classes seen so far): A_auc {_fmt(online['a_auc'], 0).strip()}, "
                     f"A_last {_fmt(online['a_last'], 0).strip()}, A_avg {_fmt(online['a_avg'], 0).strip()}; "
                     f"F_last {_fmt(online['f_last'], 0).strip()} points")
    lines.append("")
    evaluation = (f"; anytime evaluation {online['eval_seconds']:.1f} s, {online['evaluations']} evaluations every "
                  f"{online['eval_every']} examples" if online else "")
    lines.append(f"time {metrics_doc['wall_seconds']:.1f} s ({metrics_doc['steps']} steps{evaluation}), "
                 f"peak memory {metrics_doc['peak_rss_mb']:.0f} MiB")
    if out is not None:
        lines.append(f"results in {out}")
    return "\n".join(lines)


class RunLog:
    """Appends timestamped lines to ``run.log`` in the run folder."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a", encoding="utf-8")

    def write(self, text: str) -> None:
        self.file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()
