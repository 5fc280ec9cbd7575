"""``lifelong merge --method rmm``: the adapters of finished ``lora`` runs (their ``adapters.pt``,
:mod:`lifelong.plugins.lora`) merged reversibly (:mod:`lifelong.edit.rmm`) for every basis size
``k = 1..n``, each task evaluated with its rebuilt adapter, against the plain merges of the same
adapters and against keeping every adapter. See docs/MERGING.md for the metrics' keys."""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from lifelong.edit.rmm import (PER, check_adapters, check_basis, check_lam, delta, merge_deltas, merge_factors,
                               reconstruction_errors, rmm)
from lifelong.edit.run import SCHEMA_VERSION, _check_same, _finish, accuracy_of
from lifelong.edit.task_vectors import state_of
from lifelong.errors import ConfigError
from lifelong.plugins.lora import ADAPTERS_FILE
from lifelong.runs.load import file_digest, load_run, read_state


def read_adapters(folder: Path) -> dict[str, Any]:
    """A lora run's ``adapters.pt``; one line when the folder has none."""
    path = Path(folder) / ADAPTERS_FILE
    if not path.is_file():
        raise ConfigError(f"{folder} holds no {ADAPTERS_FILE}: give runs of the lora method (lifelong run --method lora)")
    return torch.load(path, map_location="cpu", weights_only=True)


def _collect(folders: Sequence[str | Path], device: str, data_root: Optional[str]
             ) -> tuple[list, list[dict], list[tuple[int, int]], float, dict, Any]:
    """The runs, their adapters (one per task, in order), ``(run, task)`` of each, the scaling and
    the base weights; one line for runs on different bases, scalings or repeated tasks."""
    if not folders:
        raise ConfigError("no lora runs given")
    cache: dict = {}
    runs = [load_run(f, device=device, data_root=data_root, what="--models", source_cache=cache)[0] for f in folders]
    files = [read_adapters(r.folder) for r in runs]
    _check_same(runs)
    digests = {file_digest(r.folder / "model.pt") for r in runs}
    if len(digests) > 1:
        raise ConfigError("the lora runs have different base models (model.pt); give runs trained on one base")
    scalings = {float(f["scaling"]) for f in files}
    if len(scalings) > 1:
        raise ConfigError(f"the lora runs' adapters have different scalings alpha/r: {sorted(scalings)}")
    adapters, owners, seen = [], [], set()
    for i, f in enumerate(files):
        for task, factors in sorted(f["tasks"].items()):
            if task in seen:
                raise ConfigError(f"two adapters for task {task + 1}; give runs trained on different tasks")
            seen.add(task)
            adapters.append(factors)
            owners.append((i, int(task)))
    check_adapters(adapters)
    base = read_state(runs[0].folder / "model.pt", next(runs[0].model.parameters()).device)
    return runs, adapters, owners, scalings.pop(), base, next(iter(cache.values()))


def with_deltas(base: dict[str, torch.Tensor], deltas: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The base state with each layer's weight plus its update (reshaped to the weight)."""
    state = {k: v.clone() for k, v in base.items()}
    for layer, d in deltas.items():
        w = state[f"{layer}.weight"]
        state[f"{layer}.weight"] = w + d.to(w.device, w.dtype).reshape(w.shape)
    return state


class _Evaluator:
    """Accuracies of the base with given updates, on every task of the first run's stream."""

    def __init__(self, runs: list, base: dict, scaling: float, source: Any) -> None:
        from lifelong.runs.session import check_run, stream_of

        first = runs[0]
        benchmark = check_run(first.config)[0]
        self.stream = stream_of(benchmark, source, first.config)
        self.model, self.base, self.scaling = first.model, base, scaling

    def of(self, deltas: dict[str, torch.Tensor]) -> dict[str, list[float]]:
        return accuracy_of(self.model, with_deltas(self.base, deltas), self.stream)

    def own(self, adapters: Sequence[dict], owners: Sequence[tuple[int, int]], only_run: Optional[int] = None):
        """Each task through its own adapter (the base where it has none): ``{class_il, task_il}``."""
        out = self.of({})
        for adapter, (run, task) in zip(adapters, owners):
            if only_run is not None and run != only_run:
                continue
            acc = self.of(delta(adapter, self.scaling))
            for key in out:
                out[key][task] = acc[key][task]
        return out


def _per_basis(ev: _Evaluator, adapters: list, owners: list, k: int, per: str) -> tuple[dict, dict]:
    rebuilt, stored = rmm(adapters, k, per)
    errors = reconstruction_errors(rebuilt, adapters, ev.scaling)
    entry = {"basis": k, "accuracy": ev.own(rebuilt, owners),
             "reconstruction_error": {**errors, "factors_mean": sum(errors["factors"]) / len(adapters),
                                      "delta_mean": sum(errors["delta"]) / len(adapters)},
             "stored_numbers": sum(v["basis"].numel() + v["coefficients"].numel() for v in stored.values())}
    return entry, stored


def rmm_runs(models: Sequence[str | Path], basis: int, lam: Optional[float] = None, out: str | Path | None = None,
             *, per: str = "position", device: str = "auto", data_root: str | None = None) -> dict[str, Any]:
    """RMM (:func:`lifelong.edit.rmm.rmm`) of the adapters of the finished lora runs ``models``
    for every basis size ``1..n``, with ``basis`` the artefact written (``rmm.pt``); the plain
    merges use ``λ = lam`` (``[0, 1]``, default ``1/n``); ``per``: one basis per position of the
    factors (``"position"``) or per layer (``"layer"``; :func:`lifelong.edit.rmm.rmm`). Returns the metrics document; with
    ``out``, writes ``model.pt`` (the base), ``rmm.pt``, ``config.yaml`` and ``metrics.json``
    there together, or nothing."""
    started = time.perf_counter()
    if isinstance(basis, bool) or not isinstance(basis, int) or basis < 1:
        raise ConfigError(f"RMM basis size must be an integer >= 1, got {basis!r}")
    if lam is not None:
        check_lam(lam, 1)
    if per not in PER:
        raise ConfigError(f"RMM basis per {per!r}: choose one of {', '.join(PER)}")

    def build():
        runs, adapters, owners, scaling, base, source = _collect(models, device, data_root)
        n = len(adapters)
        check_basis(basis, n)
        lam_ = check_lam(lam, n)
        ev = _Evaluator(runs, base, scaling, source)
        per_basis, artefact = [], None
        for k in range(1, n + 1):
            entry, stored = _per_basis(ev, adapters, owners, k, per)
            per_basis.append(entry)
            artefact = stored if k == basis else artefact
        factors = merge_factors(adapters, lam_)
        first = runs[0]
        doc = {
            "schema_version": SCHEMA_VERSION, "kind": "merge", "complete": True, "method": "rmm",
            "params": {"basis": basis, "per": per, "lam": lam_, "num_adapters": n, "rank": int(adapters[0][next(iter(adapters[0]))]["A"].shape[0]),
                       "scaling": scaling},
            "base": str(first.folder / "model.pt"), "source_runs": [str(r.folder) for r in runs],
            "benchmark": first.resolved.get("benchmark"), "backbone": first.resolved.get("backbone"),
            "seed": first.config.seed, "task_classes": first.resolved.get("task_classes"),
            "adapters": [{"run": str(runs[r].folder), "task": t + 1} for r, t in owners],
            "accuracy": per_basis[basis - 1]["accuracy"],
            "before": {"base": ev.of({}), "source_runs": [ev.own(adapters, owners, i) for i in range(len(runs))]},
            "kept": ev.own(adapters, owners),
            "plain": {"lam": lam_, "delta": ev.of(merge_deltas(adapters, scaling, lam_)),
                      "factors": ev.of(delta(factors, scaling))},
            "per_basis": per_basis,
            "adapter_numbers": sum(f["A"].numel() + f["B"].numel() for a in adapters for f in a.values()),
            "wall_seconds": time.perf_counter() - started, "command": " ".join(sys.argv),
        }
        config = {"kind": "merge", "method": "rmm", "models": [str(m) for m in models],
                  "params": doc["params"], "device": str(next(first.model.parameters()).device)}
        buffer = io.BytesIO()
        torch.save({"basis": basis, "scaling": scaling, "adapters": doc["adapters"], "layers": artefact}, buffer)
        return doc, state_of(base), config, {"rmm.pt": buffer.getvalue()}

    return _finish(out, ".lifelong-merge-", build)
