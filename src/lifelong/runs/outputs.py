"""The folders that ``lifelong unlearn``, ``lifelong edit lines``, ``lifelong merge`` and
``lifelong lm train`` write, read
back for ``lifelong report`` (:mod:`lifelong.runs.sections` turns them into its sections).

Each holds a ``metrics.json`` whose ``kind`` is ``unlearn``, ``edit``, ``merge`` or ``lm`` (written by
:func:`lifelong.unlearn.unlearn_run`, :mod:`lifelong.edit.run` and :mod:`lifelong.lm.run`). :func:`load_outputs` checks
the keys the report reads, and only those: a folder whose file lacks one, or holds a value of
the wrong type (a text where an accuracy belongs, an accuracy outside 0 to 100, a schema version
this lifelong does not read), is not read, and is listed with the reason (:attr:`Outputs.skipped`)
instead of failing the whole report; keys the report does not know are kept as they are (its
sections show the numeric ones, :func:`extra_numbers`). An RMM merge (``method: rmm``) must also
hold ``per_basis``, one entry per basis size (:func:`_check_rmm`). NaN and infinite numbers, as a
diverged measure writes them, are read as missing (``None``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.errors import UserError
from lifelong.runs.metrics_file import _parse, _show

SUPPORTED_SCHEMAS = (1,)  # lifelong.unlearn.run.SCHEMA_VERSION and lifelong.edit.run.SCHEMA_VERSION (tested)
KINDS = ("unlearn", "edit", "merge", "lm")


class Invalid(Exception):
    """What is wrong with an output folder's ``metrics.json``."""


@dataclass(frozen=True)
class Output:
    """One folder of ``lifelong unlearn``, ``edit`` or ``merge``: its path, kind and checked document."""

    path: Path
    kind: str
    doc: dict[str, Any]

    @property
    def seed(self) -> int:
        return self.doc["seed"]


@dataclass
class Outputs:
    """The output folders read, by kind, and those left out with the reason (``(path, why)``)."""

    unlearn: list[Output] = field(default_factory=list)
    edit: list[Output] = field(default_factory=list)
    merge: list[Output] = field(default_factory=list)
    lm: list[Output] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.unlearn) + len(self.edit) + len(self.merge) + len(self.lm)


def number(value: Any, where: str, low: float | None = None, high: float | None = None) -> float | None:
    """A number (``None`` for null, NaN or infinity), within ``[low, high]`` when given."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"{where} is {_show(value)}, not a number or null")
    if not math.isfinite(value):
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        raise Invalid(f"{where} is {_show(value)}, not within {low:g} to {high:g}" if high is not None
                      else f"{where} is {_show(value)}, below {low:g}")
    return float(value)


def accuracy(value: Any, where: str) -> float | None:
    return number(value, where, 0.0, 100.0)


def _text(doc: dict, key: str, optional: bool = False) -> str | None:
    value = doc.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise Invalid(f"lacks {key}" if key not in doc else f"{key} is {_show(value)}, not a text")
    return value


def _mapping(doc: dict, key: str, optional: bool = False) -> dict:
    value = doc.get(key)
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"lacks {key}" if key not in doc else f"{key} is {_show(value)}, not a mapping")
    return value


def _header(doc: Any) -> str:
    """The keys that say what the document is; returns its kind."""
    if not isinstance(doc, dict):
        raise Invalid("not a metrics file (not a JSON object)")
    version = doc.get("schema_version")
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMAS:
        raise Invalid(f"has schema version {_show(version)}; this lifelong reads version "
                      f"{', '.join(map(str, SUPPORTED_SCHEMAS))}")
    if doc.get("complete") is not True:
        raise Invalid(f"complete is {_show(doc.get('complete'))}, not true: the command did not finish")
    seed = doc.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise Invalid("lacks seed" if "seed" not in doc else f"seed is {_show(seed)}, not a whole number")
    return doc.get("kind")


def _numbers(block: dict, where: str, low: float | None = None, high: float | None = None) -> dict[str, float | None]:
    """Every entry of a mapping of measures as a number (``None``: missing)."""
    return {str(k): number(v, f"{where}.{k}", low, high) for k, v in block.items()}


def _check_unlearn(doc: dict) -> dict:
    """Method, forget set, source run and the measures: ``accuracy`` (percent), ``mia`` (0 to 1),
    ``agreement`` (per split: percent and KL), ``recovery`` when present, ``wall_seconds``."""
    for key in ("method", "forget", "source_run"):
        _text(doc, key)
    for key in ("benchmark", "source_method", "compare_to"):
        _text(doc, key, optional=True)
    checked = {**doc, "params": _mapping(doc, "params", optional=True),
               "accuracy": _numbers(_mapping(doc, "accuracy"), "accuracy", 0.0, 100.0),
               "mia": number(doc.get("mia"), "mia", 0.0, 1.0),
               "wall_seconds": number(doc.get("wall_seconds"), "wall_seconds", 0.0)}
    agreement = {}
    for split, block in _mapping(doc, "agreement", optional=True).items():
        if not isinstance(block, dict):
            raise Invalid(f"agreement.{split} is {_show(block)}, not a mapping")
        agreement[str(split)] = {"agreement": accuracy(block.get("agreement"), f"agreement.{split}.agreement"),
                                 "kl": number(block.get("kl"), f"agreement.{split}.kl", 0.0)}
    checked["agreement"] = agreement
    checked["recovery"] = numeric_leaves(_mapping(doc, "recovery", optional=True))
    return checked


def _accuracy_lists(block: Any, where: str = "accuracy", count: int | None = None) -> dict[str, list[float | None]]:
    """``block`` (at ``where``): per scenario (class-IL, task-IL) one accuracy per task, the same
    number of tasks in both (``count`` when given: the folder's ``accuracy``)."""
    if not isinstance(block, dict):
        raise Invalid(f"{where} is {_show(block)}, not a mapping")
    lists = {}
    for scenario in ("class_il", "task_il"):
        values = block.get(scenario)
        if not isinstance(values, list) or not values:
            raise Invalid(f"lacks {where}.{scenario}" if scenario not in block
                          else f"{where}.{scenario} is {_show(values)}, not a list of accuracies")
        lists[scenario] = [accuracy(v, f"{where}.{scenario} task {i + 1}") for i, v in enumerate(values)]
    if len(lists["class_il"]) != len(lists["task_il"]):
        raise Invalid(f"{where}.class_il has {len(lists['class_il'])} tasks but {where}.task_il "
                      f"{len(lists['task_il'])}")
    if count is not None and len(lists["class_il"]) != count:
        raise Invalid(f"{where} has {len(lists['class_il'])} tasks, not {count} as accuracy")
    return lists


def _whole(value: Any, where: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise Invalid(f"{where} is {_show(value)}, not a whole number from {low}" + (f" to {high}" if high is not None else ""))
    return value


def _basis_entry(entry: Any, where: str, count: int) -> dict:
    """One entry of an RMM folder's ``per_basis``: ``basis`` (a whole number from 1), ``accuracy``
    (as the folder's), ``reconstruction_error``'s ``delta_mean`` and ``factors_mean`` and
    ``stored_numbers`` (numbers from 0, or null)."""
    if not isinstance(entry, dict):
        raise Invalid(f"{where} is {_show(entry)}, not a mapping")
    if "basis" not in entry:
        raise Invalid(f"{where} lacks basis")
    errors = entry.get("reconstruction_error")
    errors = {} if errors is None else errors
    if not isinstance(errors, dict):
        raise Invalid(f"{where}.reconstruction_error is {_show(errors)}, not a mapping")
    return {**entry, "basis": _whole(entry["basis"], f"{where}.basis", 1),
            "accuracy": _accuracy_lists(entry.get("accuracy"), f"{where}.accuracy", count),
            "reconstruction_error": {**errors, **{
                key: number(errors.get(key), f"{where}.reconstruction_error.{key}", 0.0)
                for key in ("delta_mean", "factors_mean")}},
            "stored_numbers": number(entry.get("stored_numbers"), f"{where}.stored_numbers", 0.0)}


def _adapters(doc: dict, count: int) -> list[dict] | None:
    """An RMM merge's ``adapters`` (``[{run, task}]``, task from 1 to ``count``), or ``None``."""
    adapters = doc.get("adapters")
    if adapters is not None and (not isinstance(adapters, list) or not all(isinstance(a, dict) for a in adapters)):
        raise Invalid(f"adapters is {_show(adapters)}, not a list of mappings")
    for i, adapter in enumerate(adapters or []):
        _whole(adapter.get("task"), f"adapters.{i}.task", 1, count)
    return adapters


def _check_rmm(doc: dict, count: int) -> dict:
    """An RMM merge's ``per_basis`` (required: :func:`_basis_entry`, basis sizes increasing),
    and, checked when present, ``kept`` and ``plain``'s ``delta`` and ``factors`` (accuracies as
    the folder's), ``plain.lam``, ``adapters`` (their tasks, from 1) and ``adapter_numbers``."""
    entries = doc.get("per_basis")
    if not isinstance(entries, list) or not entries:
        raise Invalid("lacks per_basis" if "per_basis" not in doc
                      else f"per_basis is {_show(entries)}, not a list of basis sizes")
    per_basis = [_basis_entry(e, f"per_basis.{i}", count) for i, e in enumerate(entries)]
    sizes = [e["basis"] for e in per_basis]
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise Invalid(f"per_basis has basis sizes {_show(sizes)}, not increasing")
    plain = _mapping(doc, "plain", optional=True)
    checked_plain = {"lam": number(plain.get("lam"), "plain.lam", 0.0, 1.0)}
    for name in ("delta", "factors"):
        if plain.get(name) is not None:
            checked_plain[name] = _accuracy_lists(plain[name], f"plain.{name}", count)
    return {"per_basis": per_basis, "plain": {**plain, **checked_plain}, "adapters": _adapters(doc, count),
            "kept": None if doc.get("kept") is None else _accuracy_lists(doc["kept"], "kept", count),
            "adapter_numbers": number(doc.get("adapter_numbers"), "adapter_numbers", 0.0)}


def _check_weights(doc: dict) -> dict:
    """An edit or a merge: method, parameters, base, source runs and the per-task accuracies."""
    _text(doc, "method")
    _text(doc, "base")
    _text(doc, "benchmark", optional=True)
    runs = doc.get("source_runs")
    if not isinstance(runs, list) or not runs or not all(isinstance(r, str) for r in runs):
        raise Invalid("lacks source_runs" if "source_runs" not in doc
                      else f"source_runs is {_show(runs)}, not a list of run folders")
    params = _mapping(doc, "params", optional=True)
    checked = {**doc, "params": params, "accuracy": _accuracy_lists(_mapping(doc, "accuracy")),
               "wall_seconds": number(doc.get("wall_seconds"), "wall_seconds", 0.0)}
    if doc["kind"] == "merge" and doc["method"] == "rmm":
        checked.update(_check_rmm(doc, len(checked["accuracy"]["class_il"])))
    if doc["kind"] == "edit":
        alpha = number(params.get("alpha"), "params.alpha", 0.0, 1.0)
        if alpha is None:
            raise Invalid("lacks params.alpha" if "alpha" not in params else "params.alpha is not a number")
        checked["params"] = {**params, "alpha": alpha, "beta": number(params.get("beta"), "params.beta")}
    return checked


def _names(doc: dict, key: str) -> list[str]:
    value = doc.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise Invalid(f"lacks {key}" if key not in doc else f"{key} is {_show(value)}, not a list of names")
    return value


def _losses(value: Any, where: str, count: int) -> list[float | None]:
    """A row of ``count`` held-out losses (numbers from 0; ``None`` for a diverged one)."""
    if not isinstance(value, list) or len(value) != count:
        raise Invalid(f"{where} is {_show(value)}, not a list of {count} losses (one per corpus)")
    return [number(v, f"{where}[{j}]", 0.0) for j, v in enumerate(value)]


def _curve_point(point: Any, where: str, count: int, tasks: int) -> dict:
    if not isinstance(point, dict):
        raise Invalid(f"{where} is {_show(point)}, not a mapping")
    return {"tokens": _whole(point.get("tokens"), f"{where}.tokens", 0),
            "task": _whole(point.get("task"), f"{where}.task", 0, tasks - 1),
            "losses": _losses(point.get("losses"), f"{where}.losses", count)}


def _check_lm(doc: dict) -> dict:
    """A ``lifelong lm train`` run folder: ``stream`` (the tasks), ``corpora`` (the columns;
    the stream's names when absent, as before joint tasks), ``loss_matrix`` (a row per task
    trained), ``init_losses`` and ``curve`` (points of ``tokens``, ``task``, ``losses``)."""
    stream = _names(doc, "stream")
    corpora = _names(doc, "corpora") if "corpora" in doc else stream
    matrix = doc.get("loss_matrix")
    if not isinstance(matrix, list) or not 1 <= len(matrix) <= len(stream):
        raise Invalid(f"loss_matrix is {_show(matrix)}, not a list of 1 to {len(stream)} rows (one per task)")
    curve = doc.get("curve", [])
    if not isinstance(curve, list):
        raise Invalid(f"curve is {_show(curve)}, not a list")
    init = doc.get("init_losses")
    return {**doc, "stream": stream, "corpora": corpora,
            "loss_matrix": [_losses(row, f"loss_matrix[{i}]", len(corpora)) for i, row in enumerate(matrix)],
            "init_losses": None if init is None else _losses(init, "init_losses", len(corpora)),
            "curve": [_curve_point(p, f"curve[{i}]", len(corpora), len(stream)) for i, p in enumerate(curve)]}


def check_output(doc: Any) -> dict[str, Any]:
    """``doc`` checked (see the module's docstring); raises :class:`Invalid` saying what is wrong."""
    kind = _header(doc)
    if kind not in KINDS:
        raise Invalid(f"kind is {_show(kind)}, not one of {', '.join(KINDS)}")
    if kind == "lm":
        return _check_lm(doc)
    return _check_unlearn(doc) if kind == "unlearn" else _check_weights(doc)


def read_output(path: Path) -> Output:
    """The checked ``metrics.json`` of an output folder; :class:`Invalid` (or :class:`UserError`
    for a file that is not JSON) saying what is wrong."""
    doc = _parse(path / "metrics.json")
    try:
        checked = check_output(doc)
    except RecursionError:  # values nested deeper than anything the report reads
        raise Invalid("is nested too deeply to be a metrics file") from None
    return Output(path, checked["kind"], checked)


def load_outputs(paths: list[Path]) -> Outputs:
    """Every output folder read (:func:`read_output`), by kind; one that cannot be is in
    :attr:`Outputs.skipped` with the reason."""
    found = Outputs()
    for path in paths:
        try:
            output = read_output(Path(path))
        except (Invalid, UserError) as exc:
            found.skipped.append((Path(path), str(exc)))
            continue
        getattr(found, output.kind).append(output)
    return found


def numeric_leaves(block: dict[str, Any], known: frozenset[str] | set[str] = frozenset()) -> dict[str, float | None]:
    """The numbers of a mapping and of the mappings in it, one level down (``"zrf.forget"``), NaN
    as ``None``; keys in ``known``, texts, lists and anything deeper are left out."""
    found: dict[str, float | None] = {}
    for key, value in block.items():
        if key in known:
            continue
        if _is_number(value):
            found[str(key)] = number(value, str(key))
        elif isinstance(value, dict):
            found.update({f"{key}.{k}": number(v, str(k)) for k, v in value.items() if _is_number(v)})
    return found


def extra_numbers(doc: dict[str, Any], known: set[str]) -> dict[str, float | None]:
    """The numeric measures of ``doc`` that the section does not know by name
    (:func:`numeric_leaves` of the keys not in ``known``); :func:`other_keys` names the rest."""
    return numeric_leaves(doc, known)


def other_keys(doc: dict[str, Any], known: set[str]) -> list[str]:
    """The keys of ``doc`` that neither the section nor :func:`extra_numbers` shows (lists, texts,
    mappings without numbers)."""
    shown = {k.split(".")[0] for k in extra_numbers(doc, known)}
    return [str(k) for k in doc if k not in known and k not in shown]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
