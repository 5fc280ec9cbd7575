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


def lines_run(base: str | Path, finetuned: str | Path, alpha: float, beta: Optional[float] = None,
              out: str | Path | None = None, *, device: str = "auto", data_root: str | None = None) -> dict[str, Any]:
    """The single-task LiNeS edit (:func:`lifelong.edit.lines_edit`) of the finished run
    ``finetuned``, trained with ``init_from`` the run or ``model.pt`` ``base``: ``α ∈ [0, 1]``,
    ``β = 1 − α`` unless given (``β = 0``: plain interpolation ``θ_base + α·τ``). Returns the
    metrics document (docs/MERGING.md); with ``out``, writes ``model.pt``, ``config.yaml`` and
    ``metrics.json`` there together, or nothing."""
    started = time.perf_counter()
    alpha, beta = check_alpha_beta(alpha, beta)

    def build():
        sources = load_sources(base, [finetuned], device=device, data_root=data_root)
        model = sources.runs[0].model
        state = lines_edit(sources.base, model, alpha, beta=beta)
        params = {"alpha": alpha, "beta": beta, "num_layers": num_layers(layer_map(model))}
        doc = _document("edit", "lines", params, sources, state, started)
        config = {"kind": "edit", "method": "lines", "base": str(sources.base_file), "finetuned": str(finetuned),
                  "params": params, "device": str(next(model.parameters()).device)}
        return doc, state, config

    return _finish(out, ".lifelong-edit-", build)


def check_merge_values(method: str, lam: Optional[float], k: float, lines: bool, beta: Optional[float]) -> float:
    """One line for a bad combination or value; returns ``λ`` (1 unless given)."""
    if method not in METHODS:
        raise ConfigError(f"unknown merge method {method!r}; choose one of: {', '.join(METHODS)}, rmm")
    _check_k(k)
    if lines and beta is None:
        raise ConfigError("--lines needs --beta B (the reference tunes β on validation, over 0.1..1.0)")
    if lines and lam is not None:
        raise ConfigError("--lines sets the scale itself (α from the L1 norms, β given); drop --lam")
    if not lines and beta is not None:
        raise ConfigError("--beta is LiNeS' depth scaling: give it with --lines")
    if beta is not None:
        _finite(beta, "β")
    return 1.0 if lam is None else _finite(lam, "λ")


def merge_runs(base: str | Path, models: Sequence[str | Path], method: str = "task_arithmetic",
               lam: Optional[float] = None, k: float = 20.0, lines: bool = False, beta: Optional[float] = None,
               out: str | Path | None = None, *, device: str = "auto", data_root: str | None = None) -> dict[str, Any]:
    """The task-arithmetic or TIES merge (:func:`lifelong.edit.merge`, ``λ`` default 1, TIES'
    ``k`` percent) of the finished runs ``models``, all fine-tuned (``init_from``) from ``base``;
    with ``lines``, LiNeS on the merged vector instead of ``λ`` (:func:`lifelong.edit.lines_merge`:
    ``α`` from the L1 norms, ``beta`` given). Returns the metrics document; with ``out``, writes
    the folder (see :func:`lines_run`)."""
    started = time.perf_counter()
    method = method.replace("-", "_")
    lam = check_merge_values(method, lam, k, lines, beta)

    def build():
        sources = load_sources(base, models, device=device, data_root=data_root, what="--models")
        nets = [r.model for r in sources.runs]
        params: dict[str, Any] = {"k": float(k)} if method == "ties" else {}
        if lines:
            taus = task_vectors(sources.base, nets)
            state = lines_merge(sources.base, nets, beta, method, k)
            params.update(lines=True, alpha=merged_alpha(taus, merged_vector(taus, method, k)), beta=float(beta),
                          num_layers=num_layers(layer_map(nets[0])))
        else:
            state = merge(sources.base, nets, method, lam, k)
            params.update(lines=False, lam=lam)
        doc = _document("merge", method, params, sources, state, started)
        config = {"kind": "merge", "method": method, "base": str(sources.base_file),
                  "models": [str(m) for m in models], "params": params,
                  "device": str(next(nets[0].parameters()).device)}
        return doc, state, config

    return _finish(out, ".lifelong-merge-", build)
