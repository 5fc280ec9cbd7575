"""Editing and merging finished runs (``lifelong edit lines``, ``lifelong merge``): read the run
folders (``config.yaml``, ``model.pt``) with the run machinery's builders
(:func:`lifelong.runs.load.load_run`), check that every model has the same architecture and
stream and was fine-tuned from the base (the run setting ``init_from``: its ``init_digest`` is
the base ``model.pt``'s), edit or merge the weights (:mod:`lifelong.edit`), evaluate the result
on every task of the runs' stream (:func:`lifelong.evaluate.evaluate`) and write ``model.pt``,
``config.yaml`` and ``metrics.json`` to a new folder, all at once or nothing.
"""
from __future__ import annotations

import copy
import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn

from lifelong.edit.layers import layer_map, num_layers
from lifelong.edit.lines import _finite, check_alpha_beta, lines_edit, lines_merge, merged_alpha
from lifelong.edit.merge import METHODS, _check_k, merge, merged_vector
from lifelong.edit.select import (ALPHA_GRID, LAM_GRID, VALIDATION_FRACTION, SPLIT_SEED_OFFSET, check_fraction,
                                  check_grid, choose, normalised_score, split_stream, tradeoff_score)
from lifelong.edit.task_vectors import check_compatible, state_of, task_vectors
from lifelong.errors import ConfigError
from lifelong.evaluate import evaluate
from lifelong.runs.load import SourceRun, check_finished, file_digest, load_run, read_state, staging_folder, write_folder

SCHEMA_VERSION = 1  # of an edit's or a merge's metrics.json (``kind: edit`` or ``merge``)
# what must agree between the fine-tuned runs for their weights and tasks to be the same kind
SAME_RUN = ("benchmark", "backbone", "scenario", "task_classes")
SEEDED_STREAMS = ("domain-il",)  # streams whose tasks depend on the seed (permutations, rotations)


@dataclass
class Sources:
    """The base weights and where they came from, the fine-tuned runs, and their stream."""

    base: dict[str, torch.Tensor]
    base_file: Path
    runs: list[SourceRun]
    stream: Any


def base_file(path: str | Path) -> Path:
    """The ``model.pt`` that ``--base`` names: the file itself, or a finished run folder's."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"--base {path} is neither a model file nor a folder")
    if (path / "config.yaml").is_file():
        check_finished(path, "--base")
    if not (path / "model.pt").is_file():
        raise ConfigError(f"--base {path} holds no model.pt")
    return path / "model.pt"


def _check_same(runs: Sequence[SourceRun]) -> None:
    """One line unless every run has the first one's benchmark, backbone, tasks and head (and seed
    where the tasks depend on it) and the same state-dict shapes."""
    first = runs[0]
    for run in runs[1:]:
        keys = SAME_RUN + (("seed",) if first.resolved.get("scenario") in SEEDED_STREAMS else ())
        for key in keys:
            if run.resolved.get(key) != first.resolved.get(key):
                raise ConfigError(f"{run.folder} and {first.folder} differ in {key} ({run.resolved.get(key)} vs "
                                  f"{first.resolved.get(key)}); give runs of one backbone and benchmark")
        check_compatible(state_of(first.model), state_of(run.model), what=f"the model of {run.folder}")


def _check_start(runs: Sequence[SourceRun], base: Path) -> None:
    """One line unless every run was fine-tuned from ``base`` (``init_digest`` is its digest)."""
    digest = file_digest(base)
    for run in runs:
        start = run.resolved.get("init_from")
        if run.resolved.get("init_digest") != digest:
            began = f"from {start}" if start else "from a fresh initialisation"
            raise ConfigError(f"{run.folder} was not fine-tuned from {base} (it started {began}); give runs "
                              f"trained with --init-from the base run")


def load_sources(base: str | Path, finetuned: Sequence[str | Path], *, device: str = "auto",
                 data_root: str | None = None, what: str = "--finetuned") -> Sources:
    """The base weights, the fine-tuned runs (checked alike and started from the base) and the
    first run's stream (every task's test set)."""
    from lifelong.runs.session import check_run, stream_of

    if not finetuned:
        raise ConfigError("no fine-tuned runs given")
    file = base_file(base)
    cache: dict = {}
    runs = [load_run(f, device=device, data_root=data_root, what=what, source_cache=cache)[0] for f in finetuned]
    _check_same(runs)
    _check_start(runs, file)
    weights = read_state(file, next(runs[0].model.parameters()).device)
    check_compatible(state_of(runs[0].model), weights, what=f"--base {base}'s model")
    benchmark = check_run(runs[0].config)[0]
    stream = stream_of(benchmark, next(iter(cache.values())), runs[0].config)
    return Sources(weights, file, runs, stream)


def accuracy_of(model: nn.Module, state: dict[str, torch.Tensor], stream: Any) -> dict[str, list[float]]:
    """Class-IL and task-IL accuracy (percent) on every task's test set of ``model`` with ``state``."""
    model = copy.deepcopy(model)
    model.load_state_dict(state)
    class_il, task_il = evaluate(model, stream)
    return {"class_il": class_il, "task_il": task_il}


def _document(kind: str, method: str, params: dict[str, Any], sources: Sources, state: dict[str, torch.Tensor],
              started: float) -> dict[str, Any]:
    first = sources.runs[0]
    return {
        "schema_version": SCHEMA_VERSION, "kind": kind, "complete": True, "method": method, "params": params,
        "base": str(sources.base_file), "source_runs": [str(r.folder) for r in sources.runs],
        "benchmark": first.resolved.get("benchmark"), "backbone": first.resolved.get("backbone"),
        "seed": first.config.seed, "task_classes": first.resolved.get("task_classes"),
        "accuracy": accuracy_of(first.model, state, sources.stream),
        "before": {"base": accuracy_of(first.model, sources.base, sources.stream),
                   "source_runs": [accuracy_of(r.model, state_of(r.model), sources.stream) for r in sources.runs]},
        "wall_seconds": time.perf_counter() - started, "command": " ".join(sys.argv),
    }


def _finish(out: str | Path | None, prefix: str, build) -> dict[str, Any]:
    """``build()`` (returning ``(doc, state, config)``, or with a fourth item ``{file name:
    bytes}`` of extra files) with ``out`` staged first and written at the end, or nothing written."""
    out = None if out is None else Path(out)
    tmp = None if out is None else staging_folder(out, prefix)
    try:
        doc, state, config, *extra = build()
        if tmp is not None:
            for name, data in (extra[0] if extra else {}).items():
                (tmp / name).write_bytes(data)
            write_folder(tmp, out, state, doc, config)
            tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return doc


def check_selection(auto: Optional[str], grid: Optional[Sequence[float]], fraction: Optional[float],
                    default: Sequence[float], unit: bool = False) -> tuple[Optional[list[float]], float]:
    """The grid and validation fraction of ``--NAME auto`` (``auto`` is the flag, ``None`` when a
    value is given): one line for a bad one, or for ``--grid`` / ``--validation-fraction`` without auto."""
    if auto is None:
        for flag, value in (("--grid", grid), ("--validation-fraction", fraction)):
            if value is not None:
                raise ConfigError(f"{flag} chooses a value on validation: give it with --alpha auto, --beta auto "
                                  f"or --lam auto")
        return None, VALIDATION_FRACTION
    name = {"--alpha": "α", "--beta": "β", "--lam": "λ"}[auto]
    return (check_grid(grid, default, name, unit=unit),
            check_fraction(VALIDATION_FRACTION if fraction is None else fraction))


def _trained(tasks: Any, count: int) -> list[int]:
    """The task indices (from 0) that a ``train_tasks`` setting names (all without one)."""
    from lifelong.config import parse_train_tasks

    numbers = range(1, count + 1) if tasks is None else parse_train_tasks(tasks)
    return [t - 1 for t in numbers if t <= count]


def _split(sources: Sources, fraction: float) -> tuple[Any, Any, dict[str, Any]]:
    """The validation and reported streams (seeded with the first run's seed) and their description."""
    seed = sources.runs[0].config.seed
    val, held = split_stream(sources.stream, seed, fraction)
    return val, held, {"validation_fraction": fraction, "split_seed": SPLIT_SEED_OFFSET + seed, "scenario": "task_il",
                       "validation_examples": [len(t.test_idx) for t in val.tasks],
                       "reported_examples": [len(t.test_idx) for t in held.tasks]}


def _edit_roles(sources: Sources) -> tuple[list[int], list[int]]:
    """``(control, target)`` task indices: the base's trained tasks but the fine-tuned run's, and those."""
    from lifelong.runs.sections import _read_train_tasks

    count = sources.stream.num_tasks
    target = _trained(sources.runs[0].config.train_tasks, count)
    base = _read_train_tasks(sources.base_file.parent) if (sources.base_file.parent / "config.yaml").is_file() else None
    control = [t for t in (range(count) if not isinstance(base, list) else [b - 1 for b in base]) if t not in target]
    if not control or not target:
        raise ConfigError("--alpha auto weighs the fine-tuned run's tasks (its --train-tasks) against the others the "
                          "base trained on; this run trained on every task")
    return control, target


def _choose_alpha(sources: Sources, beta: Optional[float], grid: list[float],
                  fraction: float) -> tuple[float, dict[str, Any], Any]:
    """α of the grid with the best trade-off (:func:`lifelong.edit.select.tradeoff_score`) on the
    validation split; the selection's description and the reported stream."""
    model = sources.runs[0].model
    control, target = _edit_roles(sources)
    val, held, split = _split(sources, fraction)
    base_acc = accuracy_of(model, sources.base, val)["task_il"]
    ft_acc = accuracy_of(model, state_of(model), val)["task_il"]

    def score(alpha: float) -> float:
        acc = accuracy_of(model, lines_edit(sources.base, model, alpha, beta=beta), val)["task_il"]
        return tradeoff_score(acc, control, target, base_acc, ft_acc)

    chosen, scores = choose(grid, score)
    return chosen, {"parameter": "alpha", "rule": "tradeoff", "chosen": chosen, "grid": grid,
                    "validation_scores": scores, "control_tasks": [c + 1 for c in control],
                    "target_tasks": [t + 1 for t in target], **split}, held


def lines_run(base: str | Path, finetuned: str | Path, alpha: float | str, beta: Optional[float] = None,
              out: str | Path | None = None, *, grid: Optional[Sequence[float]] = None,
              validation_fraction: Optional[float] = None, device: str = "auto",
              data_root: str | None = None) -> dict[str, Any]:
    """The single-task LiNeS edit (:func:`lifelong.edit.lines_edit`) of the finished run
    ``finetuned``, trained with ``init_from`` the run or ``model.pt`` ``base``: ``α ∈ [0, 1]``,
    ``β = 1 − α`` unless given (``β = 0``: plain interpolation ``θ_base + α·τ``). With ``alpha =
    "auto"``, α is chosen over ``grid`` (default 0, 0.1, ..., 1) on a seeded ``validation_fraction``
    (default 0.5) of each task's test examples by the reference's trade-off
    (:mod:`lifelong.edit.select`), and the accuracies are those of the rest. Returns the metrics
    document (docs/MERGING.md); with ``out``, writes ``model.pt``, ``config.yaml`` and
    ``metrics.json`` there together, or nothing."""
    started = time.perf_counter()
    auto = alpha == "auto"
    grid, fraction = check_selection("--alpha" if auto else None, grid, validation_fraction, ALPHA_GRID, unit=True)
    if auto:
        beta = None if beta is None else _finite(beta, "β")
    else:
        alpha, beta = check_alpha_beta(alpha, beta)

    def build():
        sources = load_sources(base, [finetuned], device=device, data_root=data_root)
        model = sources.runs[0].model
        chosen, selection = alpha, None
        if auto:
            chosen, selection, held = _choose_alpha(sources, beta, grid, fraction)
            sources = dataclasses.replace(sources, stream=held)
        a, b = check_alpha_beta(chosen, beta)
        state = lines_edit(sources.base, model, a, beta=b)
        params = {"alpha": a, "beta": b, "num_layers": num_layers(layer_map(model))}
        doc = _document("edit", "lines", params, sources, state, started)
        if selection is not None:
            doc["selection"] = selection
        config = {"kind": "edit", "method": "lines", "base": str(sources.base_file), "finetuned": str(finetuned),
                  "params": params, "device": str(next(model.parameters()).device)}
        return doc, state, config

    return _finish(out, ".lifelong-edit-", build)


def check_merge_values(method: str, lam: Optional[float | str], k: float, lines: bool,
                       beta: Optional[float | str]) -> float | str:
    """One line for a bad combination or value; returns ``λ`` (1 unless given; ``"auto"`` kept)."""
    if method not in METHODS:
        raise ConfigError(f"unknown merge method {method!r}; choose one of: {', '.join(METHODS)}, rmm")
    _check_k(k)
    if lines and beta is None:
        raise ConfigError("--lines needs --beta B or --beta auto (the reference tunes β on validation, over 0.1..1.0)")
    if lines and lam is not None:
        raise ConfigError("--lines sets the scale itself (α from the L1 norms, β given); drop --lam")
    if not lines and beta is not None:
        raise ConfigError("--beta is LiNeS' depth scaling: give it with --lines")
    if beta is not None and beta != "auto":
        _finite(beta, "β")
    return 1.0 if lam is None else lam if lam == "auto" else _finite(lam, "λ")


def _choose_scale(sources: Sources, method: str, k: float, lines: bool, grid: list[float],
                  fraction: float) -> tuple[float, dict[str, Any], Any]:
    """λ (β with ``lines``) of the grid with the best normalised accuracy
    (:func:`lifelong.edit.select.normalised_score`: each model's tasks, its ``train_tasks``) on
    the validation split; the selection's description and the reported stream."""
    nets = [r.model for r in sources.runs]
    own_tasks = [_trained(r.config.train_tasks, sources.stream.num_tasks) for r in sources.runs]
    val, held, split = _split(sources, fraction)
    own_acc = [accuracy_of(n, state_of(n), val)["task_il"] for n in nets]

    def score(value: float) -> float:
        state = (lines_merge(sources.base, nets, value, method, k) if lines
                 else merge(sources.base, nets, method, value, k))
        return normalised_score(accuracy_of(nets[0], state, val)["task_il"], own_tasks, own_acc)

    chosen, scores = choose(grid, score)
    return chosen, {"parameter": "beta" if lines else "lam", "rule": "normalised", "chosen": chosen, "grid": grid,
                    "validation_scores": scores, "model_tasks": [[t + 1 for t in ts] for ts in own_tasks],
                    **split}, held


def merge_runs(base: str | Path, models: Sequence[str | Path], method: str = "task_arithmetic",
               lam: Optional[float | str] = None, k: float = 20.0, lines: bool = False,
               beta: Optional[float | str] = None, out: str | Path | None = None, *,
               grid: Optional[Sequence[float]] = None, validation_fraction: Optional[float] = None,
               device: str = "auto", data_root: str | None = None) -> dict[str, Any]:
    """The task-arithmetic or TIES merge (:func:`lifelong.edit.merge`, ``λ`` default 1, TIES'
    ``k`` percent) of the finished runs ``models``, all fine-tuned (``init_from``) from ``base``;
    with ``lines``, LiNeS on the merged vector instead of ``λ`` (:func:`lifelong.edit.lines_merge`:
    ``α`` from the L1 norms, ``beta`` given). ``lam = "auto"`` (``beta = "auto"`` with ``lines``)
    chooses it over ``grid`` (default 0.1..1.0, 0.1..1.5 with TIES) on a seeded
    ``validation_fraction`` of each task's test examples by the normalised accuracy on the models'
    tasks, and reports the rest (:mod:`lifelong.edit.select`). Returns the metrics document; with
    ``out``, writes the folder (see :func:`lines_run`)."""
    started = time.perf_counter()
    method = method.replace("-", "_")
    lam = check_merge_values(method, lam, k, lines, beta)
    auto = "--lam" if lam == "auto" else "--beta" if beta == "auto" else None
    grid, fraction = check_selection(auto, grid, validation_fraction, LAM_GRID.get(method, []))

    def build():
        sources = load_sources(base, models, device=device, data_root=data_root, what="--models")
        nets = [r.model for r in sources.runs]
        scale, selection = (beta if lines else lam), None
        if auto:
            scale, selection, held = _choose_scale(sources, method, k, lines, grid, fraction)
            sources = dataclasses.replace(sources, stream=held)
        params: dict[str, Any] = {"k": float(k)} if method == "ties" else {}
        if lines:
            taus = task_vectors(sources.base, nets)
            state = lines_merge(sources.base, nets, scale, method, k)
            params.update(lines=True, alpha=merged_alpha(taus, merged_vector(taus, method, k)), beta=float(scale),
                          num_layers=num_layers(layer_map(nets[0])))
        else:
            state = merge(sources.base, nets, method, scale, k)
            params.update(lines=False, lam=scale)
        doc = _document("merge", method, params, sources, state, started)
        if selection is not None:
            doc["selection"] = selection
        config = {"kind": "merge", "method": method, "base": str(sources.base_file),
                  "models": [str(m) for m in models], "params": params,
                  "device": str(next(nets[0].parameters()).device)}
        return doc, state, config

    return _finish(out, ".lifelong-merge-", build)
