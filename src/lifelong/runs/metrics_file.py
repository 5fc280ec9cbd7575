"""A run's ``metrics.json`` read back and checked: the one place where a finished run's numbers
are validated, before any table or figure uses them.

:func:`read_metrics` refuses, with a :class:`~lifelong.errors.UserError` that names the file and
the key, what a run cannot have written: a missing key, a value of the wrong type, an accuracy
that is not a number from 0 to 100 (NaN included), an accuracy matrix of the wrong shape. What a
run can legitimately write is kept, as such:

- a run that stopped early (``complete`` false: it diverged or was interrupted) has fewer rows
  than tasks, possibly none; a complete run has one row per task, or one row (joint training);
- a metric that a run does not have is ``null`` (forgetting after joint training, most metrics
  of a run that stopped early); a NaN or infinite metric or wall time (a diverged run's) is read
  as ``null`` too, so that it shows as missing rather than as a number;
- the ``online`` block (anytime evaluation: A_auc, A_last, A_avg, F_last) only in the runs that
  evaluated anytime; its accuracies are numbers from 0 to 100 or ``null``.

The document is written by :func:`lifelong.runs.report.build_metrics`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lifelong.errors import UserError

SUPPORTED_SCHEMAS = (1,)  # lifelong.runs.report.SCHEMA_VERSION; checked by the tests
SCENARIOS = ("class_il", "task_il")
METRICS = ("average_accuracy", "average_incremental_accuracy", "forgetting", "backward_transfer",
           "forward_transfer")
ONLINE_ACCURACIES = ("a_auc", "a_last", "a_avg")  # and f_last (points), in the ``online`` block
_REQUIRED = ("schema_version", "complete", "benchmark", "method", "seed", "num_tasks", "class_il", "task_il",
             "wall_seconds")


class _Invalid(Exception):
    """What is wrong with a document; :func:`read_metrics` adds the file's name."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{file} is not JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise UserError(f"{file} is nested too deeply to be a metrics file") from None
    except ValueError as exc:
        raise UserError(f"{file} is not JSON: {exc}") from None


def read_metrics(file: Path) -> dict[str, Any]:
    """The checked ``metrics.json`` at ``file`` (see the module's docstring), with every accuracy
    a float and NaN metrics as ``None``; :class:`UserError` naming the file if it is unreadable
    or not what a run writes."""
    doc = _parse(file)
    try:
        return check_metrics(doc)
    except _Invalid as exc:
        raise UserError(f"{file}: {exc}") from None


def check_metrics(doc: Any) -> dict[str, Any]:
    """``doc`` checked and normalised; raises :class:`_Invalid` saying what is wrong."""
    complete = _check_header(doc)
    num_tasks = _whole(doc, "num_tasks", minimum=1)
    checked = {**doc, "seed": _whole(doc, "seed"), "wall_seconds": _seconds(doc["wall_seconds"])}
    for scenario in SCENARIOS:
        checked[scenario] = _scenario(doc[scenario], scenario, num_tasks, complete)
    if doc.get("online") is not None:
        checked["online"] = _online(doc["online"])
    rows = [len(checked[s]["accuracy_matrix"]) for s in SCENARIOS]
    if rows[0] != rows[1]:
        raise _Invalid(f"class_il.accuracy_matrix has {rows[0]} rows but task_il.accuracy_matrix {rows[1]}; "
                       f"a run measures both after every task")
    return checked


def _check_header(doc: Any) -> bool:
    """The keys that say what the document is and which run it is of; returns ``complete``."""
    if not isinstance(doc, dict):
        raise _Invalid("not a metrics file (not a JSON object)")
    missing = [key for key in _REQUIRED if key not in doc]
    if missing:
        raise _Invalid(f"lacks {', '.join(missing)}; is it a lifelong run folder?")
    version = doc["schema_version"]
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMAS:
        raise _Invalid(f"has schema version {_show(version)}; this lifelong reads version "
                       f"{', '.join(map(str, SUPPORTED_SCHEMAS))}")
    if not isinstance(doc["complete"], bool):
        raise _Invalid(f"complete is {_show(doc['complete'])}, not true or false")
    for key in ("benchmark", "method", "status", "message"):
        optional = key in ("status", "message")
        if not isinstance(doc.get(key), str) and not (optional and doc.get(key) is None):
            raise _Invalid(f"{key} is {_show(doc.get(key))}, not a text")
    if doc.get("refresh") is not None and not isinstance(doc["refresh"], (str, dict)):
        raise _Invalid(f"refresh is {_show(doc['refresh'])}, not null, a text or a mapping")
    return doc["complete"]


def _whole(doc: dict, key: str, minimum: int | None = None) -> int:
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        least = "" if minimum is None else f" of at least {minimum}"
        raise _Invalid(f"{key} is {_show(value)}, not a whole number{least}")
    return value


def _number_or_none(value: Any, where: str) -> float | None:
    """A metric: a number, or ``None`` for null, NaN and infinity (a metric the run does not have)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"{where} is {_show(value)}, not a number or null")
    return float(value) if math.isfinite(value) else None


def _seconds(value: Any) -> float | None:
    seconds = _number_or_none(value, "wall_seconds")
    if seconds is not None and seconds < 0:
        raise _Invalid(f"wall_seconds is {_show(value)}, not a number of seconds")
    return seconds


def _scenario(block: Any, name: str, num_tasks: int, complete: bool) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise _Invalid(f"{name} is {_show(block)}, not a mapping")
    if "accuracy_matrix" not in block:
        raise _Invalid(f"lacks {name}.accuracy_matrix")
    matrix = _matrix(block["accuracy_matrix"], f"{name}.accuracy_matrix", num_tasks, complete)
    values = {metric: _number_or_none(block.get(metric), f"{name}.{metric}") for metric in METRICS}
    return {**block, **values, "accuracy_matrix": matrix}


def _online(block: Any) -> dict[str, Any]:
    """The ``online`` block: the period and count of evaluations, accuracies from 0 to 100 (or
    null), forgetting and evaluation time numbers (or null)."""
    if not isinstance(block, dict):
        raise _Invalid(f"online is {_show(block)}, not a mapping")
    checked = dict(block)
    for key, least in (("eval_every", 1), ("evaluations", 0)):
        value = block.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise _Invalid(f"online.{key} is {_show(value)}, not a whole number of at least {least}")
    for key in ONLINE_ACCURACIES:
        value = _number_or_none(block.get(key), f"online.{key}")
        if value is not None and not 0.0 <= value <= 100.0:
            raise _Invalid(f"online.{key} is {_show(block.get(key))}, not an accuracy (0 to 100)")
        checked[key] = value
    checked["f_last"] = _number_or_none(block.get("f_last"), "online.f_last")
    seconds = _number_or_none(block.get("eval_seconds"), "online.eval_seconds")
    if seconds is not None and seconds < 0:
        raise _Invalid(f"online.eval_seconds is {_show(block.get('eval_seconds'))}, not a number of seconds")
    checked["eval_seconds"] = seconds
    return checked


def _matrix(value: Any, where: str, num_tasks: int, complete: bool) -> list[list[float]]:
    """Rows of ``num_tasks`` accuracies: at most one per task; for a complete run one per task,
    or a single row (joint training)."""
    if not isinstance(value, list):
        raise _Invalid(f"{where} is {_show(value)}, not a list of rows")
    if len(value) > num_tasks or (complete and len(value) not in (1, num_tasks)):
        because = (", but the run is marked complete (it needs one row per task, or one row for joint training)"
                   if complete and len(value) < num_tasks else "")
        raise _Invalid(f"{where} has {len(value)} rows for {num_tasks} tasks{because}")
    return [_row(row, where, i, num_tasks) for i, row in enumerate(value)]


def _row(row: Any, where: str, i: int, num_tasks: int) -> list[float]:
    if not isinstance(row, list):
        raise _Invalid(f"{where} row {i + 1} is {_show(row)}, not a list")
    if len(row) != num_tasks:
        raise _Invalid(f"{where} row {i + 1} has {len(row)} values for {num_tasks} tasks")
    for j, v in enumerate(row):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 100.0:
            raise _Invalid(f"{where} row {i + 1}, task {j + 1} is {_show(v)}, not an accuracy (0 to 100)")
    return [float(v) for v in row]
