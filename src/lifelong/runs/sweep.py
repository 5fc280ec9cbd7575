"""Grids of runs over methods, benchmarks, buffer sizes, hyperparameters and seeds, and their
summary tables (mean ± standard deviation over seeds per configuration).

A sweep file::

    base:                       # settings shared by every run (any run key)
      epochs: 1
    grid:                       # every combination of these lists
      method: [er, derpp]
      buffer-size: [200, 500]
      params.alpha: [0.1, 0.5]  # a method parameter
    seeds: 0-2                  # or a list
    out: runs/my-sweep          # optional; --out overrides

Each run goes to ``<out>/<values>-<hash>/seed-<k>``, the hash of the point's whole configuration
(base settings included: changing them starts new runs, in new folders); a run already complete
there is reused and an interrupted one resumed, so a sweep can be stopped and started again at
any time. A folder holding a run of other settings refuses the sweep before any run starts
(:func:`lifelong.runs.reuse.check_runs`).

``lifelong sweep`` is :func:`expand_sweep` then :func:`run_sweep`; ``lifelong run --seeds`` is a
sweep of one configuration, :func:`seed_runs` then :func:`run_sweep` (summary: :func:`format_seeds`).
No printing here: the CLI prints.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lifelong.runs.compare import parse_seeds
from lifelong.config import (NOT_IDENTITY, RUNS_ROOT, RunConfig, default_folder, load_yaml_document, make_config,
                             method_name)
from lifelong.metrics import count_complete, is_complete, mean_std
from lifelong.runs.folder import check_runs_folder
from lifelong.runs.parallel import Report, outcome, run_all, stopped, tally
from lifelong.errors import ConfigError
from lifelong.methods import build_recipe
from lifelong.runs.session import check_run, import_user_code

SWEEP_KEYS = ("base", "grid", "seeds", "out")


@dataclass
class Point:
    """One configuration of a sweep: the grid values that define it and its runs, one per seed."""

    values: dict[str, Any]
    configs: list[RunConfig]
    folder: Path


def _split_params(values: dict[str, Any], where: str) -> dict[str, Any]:
    """``{"params.alpha": 0.1, "lr": 0.03}`` -> ``{"params": {"alpha": 0.1}, "lr": 0.03}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key.startswith("params."):
            out.setdefault("params", {})[key[len("params."):]] = value
        else:
            out[key.replace("-", "_")] = value
    for key, instead in (("seed", "give seeds with the sweep's `seeds:`"),
                         ("out", "give the sweep's folder with its top-level `out:` (or --out)"),
                         ("overwrite", "complete runs are reused and interrupted ones resumed; remove the sweep's "
                                       "folder to start over")):
        if key in out:
            raise ConfigError(f"{where}: {instead}, not `{key}` as a run key")
    return out


def _slug(values: dict[str, Any], config: RunConfig) -> str:
    """A grid point's folder name: its grid values, readable, then a hash of its whole
    configuration (the base settings and the grid values; not the seed, nor what does not
    define a run, :data:`NOT_IDENTITY`), so that changing the base settings gives new folders."""
    text = "-".join(method_name(v) if isinstance(v, dict) else str(v) for v in values.values())
    text = re.sub(r"[^A-Za-z0-9.=_-]+", "_", text)[:60] or "run"
    settings = {k: v for k, v in config.to_dict().items() if k not in NOT_IDENTITY and k != "seed"}
    whole = {"configuration": settings, "grid": values}
    digest = hashlib.sha256(json.dumps(whole, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{text}-{digest}"


def _check_keys(value: Any, where: str) -> None:
    """Every key of every mapping in ``value`` is text, as every setting's name is (YAML reads
    ``1:`` or ``true:`` as a number or a boolean)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where}: the key {key!r} is not a setting's name (names are text)")
            _check_keys(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_keys(item, where)


def _read_sweep(path: Path) -> tuple[dict, dict, dict, list[int]]:
    """The sweep file's document, base settings, grid and seeds, checked."""
    doc = load_yaml_document(path)
    where = str(path)
    unknown = [k for k in doc if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key `{unknown[0]}`; a sweep has: {', '.join(SWEEP_KEYS)}")
    base = doc.get("base") or {}
    grid = doc.get("grid") or {}
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise ConfigError(f"{where}: `base` and `grid` must be mappings")
    for key, options in grid.items():
        if not isinstance(options, list) or not options:
            raise ConfigError(f"{where}: grid entry `{key}` must be a non-empty list of values")
    _check_keys(base, f"{where}: `base`")
    _check_keys(grid, f"{where}: `grid`")
    if doc.get("out") is not None and (not isinstance(doc["out"], str) or not doc["out"].strip()):
        raise ConfigError(f"{where}: `out` must be the sweep's folder, e.g. `out: runs/my-sweep`; got {doc['out']!r}")
    seeds_value = doc.get("seeds", "0")
    seeds = parse_seeds(",".join(map(str, seeds_value)) if isinstance(seeds_value, list) else str(seeds_value))
    return doc, base, grid, seeds


def _point(base: dict, values: dict, seeds: list[int], root: Path, where: str) -> Point:
    """One grid point: its configuration for every seed, checked like a run's."""
    at = f"{where}, grid point {values}"
    merged = _split_params({**base, **values}, at)
    if "params" in base and "params" in merged:
        merged["params"] = {**base["params"], **merged["params"]}
    if isinstance(merged.get("imports"), list):  # files are found next to the sweep file, as a config's are
        merged["imports"] = [str(Path(where).parent / v) if isinstance(v, str) and v.endswith(".py")
                             and not Path(v).is_absolute() else v for v in merged["imports"]]
    try:
        config = make_config(merged, {})
        import_user_code(config.imports)  # the user's own terms and plug-ins, before their recipes are checked
        build_recipe(config.method, config.params)  # a method's mistakes show before any run
    except ConfigError as exc:
        raise ConfigError(f"{at}: {exc}") from None
    folder = root / _slug(values, config)
    return Point(values, [replace(config, seed=s, out=str(folder / f"seed-{s}")) for s in seeds], folder)


@dataclass
class Sweep:
    """A sweep file expanded (or the seeds of ``--seeds``: :func:`seed_runs`): its configurations,
    the folder of their runs, and how many grid points were left out as the same configuration
    as an earlier point (``lr: [0.1, 0.1]``, or lists that merge alike)."""

    points: list[Point]
    root: Path
    duplicates: int = 0

    @property
    def configs(self) -> list[RunConfig]:
        """Every run, point by point."""
        return [c for p in self.points for c in p.configs]


def expand_sweep(path: Path, out: str | None = None) -> Sweep:
    """Read a sweep file and expand it into configurations, each checked like a run's; a grid
    point whose configuration equals an earlier one's is one run, not two."""
    path = Path(path)
    doc, base, grid, seeds = _read_sweep(path)
    root = Path(out or doc.get("out") or RUNS_ROOT / f"sweep-{path.stem}")
    check_runs_folder(root, "--out" if out else f"{path}: `out`" if doc.get("out") else "the sweep's folder")
    keys = list(grid)
    runs = math.prod(len(grid[k]) for k in keys) * len(seeds)  # counted before the grid is expanded
    if runs > 10_000:
        raise ConfigError(f"{path}: {runs} runs; a sweep holds at most 10000")
    combos = list(itertools.product(*(grid[k] for k in keys))) or [()]
    points: dict[str, Point] = {}
    for combo in combos:
        point = _point(base, dict(zip(keys, combo)), seeds, root, str(path))
        points.setdefault(_identity(point), point)
    return Sweep(list(points.values()), root, len(combos) - len(points))


def seed_runs(config: RunConfig, seeds: list[int], out: str | None = None) -> Sweep:
    """``lifelong run --seeds``, a sweep of one configuration: ``config`` for every seed, in
    ``<out>/seed-<k>`` (default ``runs/<benchmark>-<method>-seeds-<time>``), checked as a run
    is (the user's code, the recipe, ...) before any run starts."""
    method = method_name(config.method)
    root = Path(out) if out else default_folder(config.benchmark, method, "seeds")
    check_runs_folder(root)
    check_run(config)
    configs = [replace(config, seed=s, out=str(root / f"seed-{s}")) for s in seeds]
    return Sweep([Point({"method": method}, configs, root)], root)


def run_sweep(sweep: Sweep, *, jobs: int = 1, report: Report | None = None) -> dict[str, Any]:
    """Run every configuration of ``sweep`` (:func:`lifelong.runs.parallel.run_all`: complete runs
    reused, interrupted ones resumed, ``report(i, doc)`` as run ``i`` ends), then write its
    summary tables in its folder (:func:`write_tables`). Returns the table's ``rows``
    (:func:`summarize`), the text of ``summary.md`` (``table``), whether a stop request ended the
    runs early (``stopped``), how many runs ended in each state (``runs``) and whether every
    configuration's runs completed (``complete``)."""
    docs = run_all(sweep.configs, jobs, report)
    per_point, i = [], 0
    for point in sweep.points:
        per_point.append(docs[i:i + len(point.configs)])
        i += len(point.configs)
    rows = summarize(sweep.points, per_point)
    _, md = write_tables(rows, sweep.root)
    return {"rows": rows, "table": md.read_text(), "stopped": stopped(docs), "runs": tally(docs),
            "complete": all(row["complete"] for row in rows)}


_LABELS = {"class_il.average_accuracy": "class-IL average accuracy", "task_il.average_accuracy":
           "task-IL average accuracy", "class_il.forgetting": "class-IL forgetting",
           "class_il.backward_transfer": "class-IL backward transfer",
           "class_il.average_incremental_accuracy": "class-IL avg. incremental acc."}


def format_seeds(sweep: Sweep, summary: dict[str, Any]) -> str:
    """The summary of ``--seeds`` (one configuration, :func:`run_sweep`'s ``summary``): what ran,
    how many runs completed, and each metric's mean ± std over the complete ones (A_auc and
    A_last with anytime evaluation)."""
    row, config = summary["rows"][0], sweep.configs[0]
    seeds = row["seeds"]
    labels = dict(_LABELS)
    if any(key in row for key in ("online.a_auc", "online.a_last")):  # runs with anytime evaluation
        labels.update({"online.a_auc": "A_auc (anytime accuracy)", "online.a_last": "A_last (anytime, last)"})
    labels["wall_seconds"] = "wall seconds"
    lines = [f"{config.benchmark} | {row['configuration']['method']} | seeds {seeds} | "
             f"{count_complete(len(row['complete_seeds']), len(seeds))} (mean ± std of the complete runs)"]
    for key, label in labels.items():
        stat = row.get(key)
        lines.append(f"  {label:<32}" + ("-" if stat is None else f"{stat['mean']:8.2f} ± {stat['std']:.2f}"))
    return "\n".join(lines)


def load_sweep(path: Path, out: str | None = None) -> list[Point]:
    """The configurations of a sweep file (:func:`expand_sweep`)."""
    return expand_sweep(path, out).points


def _identity(point: Point) -> str:
    """What makes two grid points one configuration: equal settings, wherever the runs go."""
    return json.dumps(replace(point.configs[0], out=None).to_dict(), sort_keys=True, default=str)


def _stat(values: list[float | None]) -> dict[str, float] | None:
    stats = mean_std(values)
    return None if stats is None else {"mean": stats[0], "std": stats[1]}


METRICS = (("class_il", "average_accuracy"), ("task_il", "average_accuracy"), ("class_il", "forgetting"),
           ("class_il", "backward_transfer"), ("class_il", "average_incremental_accuracy"))
# the anytime metrics (``metrics.json``'s ``online`` block), in the rows and tables of the runs that have them
ONLINE_METRICS = (("online", "a_auc"), ("online", "a_last"))


def summarize(points: list[Point], docs: list[list[dict[str, Any] | None]]) -> list[dict[str, Any]]:
    """One row per configuration: its grid values, seeds, and mean ± std of the main metrics over
    its complete runs (:func:`lifelong.metrics.is_complete`); the others are listed in
    ``incomplete`` (a run not started is ``None``). With anytime evaluation (runs whose
    ``metrics.json`` has an ``online`` block), also A_auc and A_last (``online.a_auc``,
    ``online.a_last``); rows without it have no such keys."""
    rows = []
    for point, runs in zip(points, docs):
        kept = [d for d in runs if is_complete(d)]
        row: dict[str, Any] = {
            "configuration": point.values, "folder": str(point.folder), "seeds": [c.seed for c in point.configs],
            "complete_seeds": [d["seed"] for d in kept], "complete": len(kept) == len(runs),
            "incomplete": [{"run": c.out, "outcome": outcome(d)} for c, d in zip(point.configs, runs)
                           if not is_complete(d)]}
        for scenario, metric in METRICS:
            row[f"{scenario}.{metric}"] = _stat([d[scenario][metric] for d in kept])
        if any(d.get("online") for d in kept):
            for block, metric in ONLINE_METRICS:
                row[f"{block}.{metric}"] = _stat([(d.get(block) or {}).get(metric) for d in kept])
        row["wall_seconds"] = _stat([d["wall_seconds"] for d in kept])
        rows.append(row)
    return rows


def _cell(stat: dict[str, float] | None) -> str:
    return "-" if stat is None else f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def write_tables(rows: list[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    """``summary.csv`` (means and stds in separate columns) and ``summary.md``."""
    out.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0]["configuration"]) if rows else []
    metric_names = [f"{s}.{m}" for s, m in METRICS] + _online_names(rows) + ["wall_seconds"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(keys + ["seeds", "complete"] + [f"{m}.{x}" for m in metric_names for x in ("mean", "std")])
    for row in rows:
        stats = [row.get(m) for m in metric_names]
        writer.writerow([json.dumps(row["configuration"][k]) if isinstance(row["configuration"][k], (dict, list))
                         else row["configuration"][k] for k in keys] + [len(row["seeds"]), len(row["complete_seeds"])]
                        + [("" if s is None else f"{s[x]:.4f}") for s in stats for x in ("mean", "std")])
    csv_path, md_path = out / "summary.csv", out / "summary.md"
    csv_path.write_text(buffer.getvalue())
    md_path.write_text("\n".join(_markdown(rows, keys)) + "\n")
    return csv_path, md_path


def _online_names(rows: list[dict[str, Any]]) -> list[str]:
    """The anytime metrics' keys when a row has them (runs with anytime evaluation), else none."""
    names = [f"{b}.{m}" for b, m in ONLINE_METRICS]
    return names if any(name in row for row in rows for name in names) else []


def _markdown(rows: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """The table of ``summary.md`` (means over the complete runs of each row, and how many of all
    they are), then the runs left out and why. A_auc and A_last only when a row has them."""
    online = _online_names(rows)
    header = keys + ["runs", "class-IL", "task-IL", "forgetting (class-IL)", "BWT (class-IL)"]
    header += ["A_auc", "A_last"] if online else []
    header.append("wall s")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row["configuration"][k]) for k in keys] + [count_complete(len(row["complete_seeds"]),
                                                                               len(row["seeds"]))]
        cells += [_cell(row.get(m)) for m in ["class_il.average_accuracy", "task_il.average_accuracy",
                                              "class_il.forgetting", "class_il.backward_transfer", *online]]
        cells.append("-" if row["wall_seconds"] is None else f"{row['wall_seconds']['mean']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    left_out = [run for row in rows for run in row["incomplete"]]
    if left_out:
        lines += ["", "Left out of the means (not complete):"]
        lines += [f"- {run['run']} ({run['outcome']})" for run in left_out]
    return lines
