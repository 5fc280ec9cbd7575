"""Finished runs read back from their folders, and grouped into configurations.

Run folders (those holding ``metrics.json``, see :mod:`lifelong.runs.report`) are found at any
depth below the folders given with :func:`find_run_folders` and read with :func:`load_runs`, which
checks each ``metrics.json`` (:mod:`lifelong.runs.metrics_file`) and keeps incomplete runs, marked
(:attr:`Run.complete`). Runs that differ only by their seed are one configuration
(:func:`group_runs`), labelled by method (and buffer size when the method keeps a memory), with
any other differing setting appended.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from lifelong.config import NOT_IDENTITY, PER_SEED
from lifelong.errors import UserError
from lifelong.methods import PRESETS
from lifelong.runs.metrics_file import SUPPORTED_SCHEMAS, read_metrics  # noqa: F401  (SUPPORTED_SCHEMAS: API)

Matrix = Sequence[Sequence[float]]
_NOT_IDENTITY = set(NOT_IDENTITY) | set(PER_SEED)  # the seeds of one configuration differ only in these


@dataclass(frozen=True)
class Run:
    """One finished run: its folder, its ``metrics.json`` and its ``config.yaml``."""

    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any]

    @property
    def seed(self) -> int:
        return self.metrics["seed"]

    @property
    def complete(self) -> bool:
        """Whether the run finished; one that diverged or was interrupted is listed, but left
        out of means and figures."""
        return self.metrics["complete"] is True

    @property
    def tasks_trained(self) -> int:
        return len(self.matrix("class_il"))

    @property
    def has_memory(self) -> bool:
        """Whether the method keeps a replay memory (its recipe names one)."""
        recipe = self.config.get("recipe")
        if isinstance(recipe, dict):
            return "memory" in recipe
        preset = PRESETS.get(self.metrics["method"])  # folders written before config.yaml held the recipe
        return "buffer_size" in self.config and preset is not None and preset.recipe.get("memory") is not None

    def matrix(self, scenario: str) -> list[list[float]]:
        return self.metrics[scenario]["accuracy_matrix"]

    def anytime_curve(self) -> list[tuple[int, float]] | None:
        """The periodic points of the run's anytime evaluation, ``(examples seen, accuracy)`` from
        ``anytime.csv``; ``None`` for a run without anytime evaluation (no ``online`` block in its
        ``metrics.json``). :class:`UserError` naming the file if it is missing or damaged."""
        if not self.metrics.get("online"):
            return None
        return read_anytime_curve(self.path / "anytime.csv")


@dataclass(frozen=True)
class Configuration:
    """Runs that differ only by their seed, sorted by seed, under a readable label; complete or
    not (:attr:`complete_runs` are those that means and figures are made of)."""

    label: str
    runs: tuple[Run, ...]

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def complete_runs(self) -> tuple[Run, ...]:
        return tuple(run for run in self.runs if run.complete)

    def matrices(self, scenario: str) -> list[list[list[float]]]:
        """The accuracy matrix of each complete seed for ``scenario`` (``"class_il"`` or
        ``"task_il"``); empty when no run of the configuration is complete."""
        return [run.matrix(scenario) for run in self.complete_runs]


def read_anytime_curve(file: Path) -> list[tuple[int, float]]:
    """The ``periodic`` rows of an ``anytime.csv`` (:func:`lifelong.runs.report.anytime_csv`) as
    ``(examples_seen, accuracy)``, in order; rows without an accuracy are left out."""
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    curve = []
    for i, row in enumerate(rows, start=2):
        try:
            if row["kind"] != "periodic" or not row["accuracy"]:
                continue
            seen, accuracy = int(row["examples_seen"]), float(row["accuracy"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{file} line {i} is not a row of an anytime curve (examples_seen, task, kind, "
                            f"accuracy, ...)") from None
        if seen < 0 or not math.isfinite(accuracy) or not 0.0 <= accuracy <= 100.0:
            raise UserError(f"{file} line {i}: {row['examples_seen']} examples, accuracy {row['accuracy']}: "
                            f"not a point of an anytime curve")
        curve.append((seen, accuracy))
    return curve


def _read_run(path: Path) -> Run:
    try:
        return _read_run_files(path)
    except OSError as exc:  # e.g. a folder without the permission to look inside it
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_run_files(path: Path) -> Run:
    if not path.is_dir():
        raise UserError(f"{path} is not a run folder (no such folder)")
    metrics_file, config_file = path / "metrics.json", path / "config.yaml"
    if not metrics_file.is_file():
        raise UserError(f"{path} has no metrics.json: the run is unfinished or this is not a run folder")
    metrics = read_metrics(metrics_file)
    if not config_file.is_file():
        raise UserError(f"{path} has no config.yaml; is it a lifelong run folder?")
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
        raise UserError(f"cannot read {config_file}: {exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"{config_file} is not a run configuration (not a mapping)")
    return Run(path, metrics, config)


NOT_RUNS = ("unlearn", "edit", "merge", "lm")  # the `kind` of what `lifelong unlearn`, `edit`, `merge`, `lm train` write


def _is_run_folder(path: Path) -> bool:
    try:
        return (path / "metrics.json").is_file()
    except OSError:  # a folder that cannot be looked into holds no run that can be read
        return False


def output_kind(path: Path) -> str | None:
    """The ``kind`` of a folder that ``lifelong unlearn``, ``edit`` or ``merge`` wrote (its
    ``metrics.json`` says so), else ``None``: a run folder, or one whose file the loader will
    judge."""
    try:
        kind = json.loads((path / "metrics.json").read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError, RecursionError):  # the loader names what is wrong
        return None
    return kind if kind in NOT_RUNS else None


def _inode(path: Path) -> tuple[int, int] | None:
    """What tells folders apart however they are reached (through links); ``None`` if unreachable."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _runs_below(given: Path, outputs: list[Path] | None) -> list[Path]:
    """``given`` if it is a run folder, else every run folder at any depth below it, sorted; the
    folders of ``lifelong unlearn``, ``edit`` and ``merge`` (``given`` or below it) are added to
    ``outputs`` instead (refused when it is ``None``). Nothing inside a run folder (its
    checkpoints, its TensorBoard files) is searched, and a folder reached a second time (a
    symbolic link back up, two links to one run) is skipped."""
    try:
        exists, is_dir = given.exists(), given.is_dir()
    except OSError as exc:
        raise UserError(f"cannot read {given}: {exc.strerror or exc}") from None
    if not exists:
        raise UserError(f"{given}: no such folder")
    if not is_dir:
        raise UserError(f"{given} is a file, not a run folder; give the folder that holds metrics.json")
    if _is_run_folder(given):
        kind = output_kind(given)
        if kind is None:
            return [given]
        if outputs is None:
            raise UserError(f"{given} holds what `lifelong {kind}` wrote, not a run (its results are in "
                            f"{given / 'metrics.json'}; `lifelong report` shows them in a section of their own)")
        outputs.append(given)
        return []
    found, visited, before = [], {_inode(given)}, len(outputs or [])
    for top, dirs, _ in os.walk(given, followlinks=True):
        descend = []
        for name in dirs:
            sub = Path(top, name)
            inode = _inode(sub)
            if inode is None or inode in visited:
                continue
            visited.add(inode)
            if _is_run_folder(sub):
                if output_kind(sub) is None:
                    found.append(sub)
                elif outputs is not None:
                    outputs.append(sub)
            else:
                descend.append(name)
        dirs[:] = descend  # os.walk goes on into these only
    if not found and len(outputs or []) == before:
        raise UserError(f"{given} holds no run folder (no metrics.json at any depth below it): its runs are "
                        f"unfinished, or it is not a folder of runs")
    return sorted(found)


def find_run_folders(paths: Sequence[Path | str], outputs: list[Path] | None = None) -> list[Path]:
    """The run folders (those holding ``metrics.json``) given, or at any depth below the folders
    given: a sweep's ``<sweep>/<point>/seed-<k>``, a comparison's ``<root>/<variant>-seed<k>``.
    In the order given, each folder's runs sorted by path; a run reached twice counts once.
    Folders that ``lifelong unlearn``, ``edit`` or ``merge`` wrote (given, or below those given)
    are not runs: they are added to ``outputs`` when given (each once, in the order found; the
    result may then be empty), else left out, and one given is refused. Raises
    :class:`UserError` for a path that does not exist, is a file, or has neither a run nor (with
    ``outputs``) such a folder below it."""
    if not paths:
        raise UserError("no run folders given")
    found, seen = [], set()
    collected: list[Path] | None = None if outputs is None else []
    for given in map(Path, paths):
        for folder in _runs_below(given, collected):
            key = _inode(folder)
            if key not in seen:
                seen.add(key)
                found.append(folder)
    for folder in collected or []:
        key = _inode(folder)
        if key not in seen:
            seen.add(key)
            outputs.append(folder)  # type: ignore[union-attr]
    return found


def load_runs(paths: Sequence[Path | str]) -> list[Run]:
    """Read each run folder, complete or not (:attr:`Run.complete`); raise :class:`UserError`
    naming the folder or file if one is missing, unfinished (no ``metrics.json``), of another
    schema version, unreadable or not what a run writes (:mod:`lifelong.runs.metrics_file`).
    Nothing is skipped."""
    if not paths:
        raise UserError("no run folders given")
    return [_read_run(Path(p)) for p in paths]


def _identity_config(run: Run) -> dict[str, Any]:
    """The configuration without what does not change the measurement; a setting that is null
    counts as absent (older run folders leave out settings that did not exist yet)."""
    config = {k: v for k, v in run.config.items() if k not in _NOT_IDENTITY and v is not None}
    if not run.has_memory:
        config.pop("buffer_size", None)
    return config


def _text_keys(value: Any) -> Any:
    """``value`` with every mapping's keys as text, so that it sorts (YAML keys can be numbers)."""
    if isinstance(value, dict):
        return {str(k): _text_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text_keys(v) for v in value]
    return value


def _identity(run: Run) -> str:
    return json.dumps(_text_keys(_identity_config(run)), sort_keys=True, default=str)


def _base_label(run: Run) -> str:
    extras = []
    if run.has_memory and "buffer_size" in run.config:
        extras.append(f"buffer {run.config['buffer_size']}")
    refresh = run.metrics.get("refresh")
    if refresh is not None:
        form = refresh if isinstance(refresh, str) else refresh.get("form", "paper")
        extras.append(f"refresh {form}")
    return run.metrics["method"] + (f" ({', '.join(extras)})" if extras else "")


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``; an empty mapping stays a value (``"{}"``)."""
    if isinstance(value, dict) and value:
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): json.dumps(value, sort_keys=True, default=str)}


def group_runs(runs: Sequence[Run]) -> list[Configuration]:
    """Group runs whose configurations are equal but for the seed (and for where and how they
    ran: folder, device, threads), in the order each configuration first appears.

    Labels are the method and, for a method with a memory, its buffer size, and the refresh form,
    e.g. ``derpp (buffer 200, refresh code)``; configurations that would share a label get the
    settings that tell them apart appended (``lr=0.03``). Refused with :class:`UserError`: runs of
    different benchmarks or numbers of tasks, and one configuration with a seed twice."""
    if not runs:
        raise UserError("no run folders given")
    tasks = {(r.metrics["benchmark"], r.metrics["num_tasks"]) for r in runs}
    if len(tasks) > 1:
        listed = ", ".join(f"{b} with {t} tasks" for b, t in sorted(tasks, key=str))
        raise UserError(f"runs of different task sequences ({listed}); report one benchmark at a time")
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(_identity(run), []).append(run)
    for members in groups.values():
        _check_seeds_unique(members)
        _check_one_shape(members)
    labels = _labels(groups)
    return [Configuration(labels[key], tuple(sorted(members, key=lambda r: r.seed)))
            for key, members in groups.items()]


def _check_seeds_unique(members: list[Run]) -> None:
    by_seed: dict[int, Run] = {}
    for run in members:
        if run.seed in by_seed:
            raise UserError(f"{by_seed[run.seed].path} and {run.path} are the same configuration with the "
                            f"same seed {run.seed}; leave one out")
        by_seed[run.seed] = run


def _check_one_shape(members: list[Run]) -> None:
    """The complete runs of one configuration have matrices of one shape (their figures average them)."""
    complete = [run for run in members if run.complete]
    for run in complete[1:]:
        rows, first = len(run.matrix("class_il")), len(complete[0].matrix("class_il"))
        if rows != first:
            raise UserError(f"{complete[0].path} and {run.path} are one configuration but hold accuracy matrices "
                            f"of {first} and {rows} rows; leave one out")


def _labels(groups: dict[str, list[Run]]) -> dict[str, str]:
    """A readable label per configuration; those that would share one get the settings that
    tell them apart appended."""
    labels = {key: _base_label(members[0]) for key, members in groups.items()}
    for label in set(labels.values()):
        clash = [key for key, lab in labels.items() if lab == label]
        if len(clash) < 2:
            continue
        flat = {key: _flatten(_identity_config(groups[key][0])) for key in clash}
        names = sorted({name for f in flat.values() for name in f})
        differing = [n for n in names if len({f.get(n, "-") for f in flat.values()}) > 1]
        for key in clash:
            labels[key] = f"{label} " + " ".join(f"{n}={flat[key].get(n, '-')}" for n in differing)
    return labels
