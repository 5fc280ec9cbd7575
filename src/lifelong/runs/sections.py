"""The sections of ``lifelong report`` for the folders of ``lifelong unlearn``, ``edit lines`` and
``merge`` (read by :mod:`lifelong.runs.outputs`): tables of formatted cells, the same for the
text the command prints and for the HTML page (:mod:`lifelong.runs.html_report`), and the data
of their figures (plotted by :mod:`lifelong.runs.figures`).

- **Unlearning**: one row per unlearning folder, or per group of folders that differ only by the
  seed (same source configuration, forget set, method and parameters), as mean ± std over the
  seeds (:func:`lifelong.metrics.mean_std`): accuracy on the forget, retain and test sets, the
  membership-inference attack, agreement and KL with the retrained run (``--compare-to``), the
  recovery measures and any other number the file holds, the method's time and its ratio to
  the retrained run's training time (its ``train_seconds``, else ``wall_seconds``), per seed.
- **Edits (LiNeS)**: per scenario, the control and target accuracy of each edit over α, mean ±
  std over seeds, and the trade-off figure (target against control, one curve per method and
  β rule). The *target* tasks are those the fine-tuned run trained on (its ``train_tasks``), the
  *control* tasks those the base trained on (all when its ``config.yaml`` cannot be read or it
  trained on all), but the targets.
- **Merges**: per scenario, one row per merge folder with each task's accuracy and the mean on
  the merged tasks (those the merged runs trained on), and, when a merge was made at several
  scales (λ; β with LiNeS), that mean over the scale, one line per kind of merge.
- **Merges: RMM** (``lifelong merge --method rmm``, :mod:`lifelong.edit.rmm_run`; Alipour and
  Amiri, "Towards reversible model merging for low-rank weights", arXiv 2510.14163, 2025): per group of
  folders that differ only by the seed (and the basis size written), the mean accuracy on the
  adapters' tasks of every adapter kept, the plain merges of ΔW and of A and B, and RMM at each
  basis size k with the rebuilt adapters' relative errors and the share of the adapters' numbers
  stored, mean ± std over the seeds; and the figure of accuracy against k (one curve per group,
  lines for every adapter kept and the plain merge of ΔW).
- **Language models** (``lifelong lm train``, :mod:`lifelong.lm.run`): per group of folders whose
  ``config.yaml`` differs only by the seed (and the data folder), each corpus's held-out loss
  after the stream, the forgetting and the mean loss, mean ± std over the seeds; each folder's
  loss matrix; and per corpus the figure of its held-out loss over the training tokens.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from lifelong.errors import UserError
from lifelong.metrics import mean_std
from lifelong.runs.outputs import Invalid, Output, Outputs, extra_numbers, number, other_keys

SCENARIO_NAMES = {"class_il": "class-IL", "task_il": "task-IL"}
MISSING = "–"


@dataclass
class Table:
    """A table's heading, columns and formatted cells; the first ``text_columns`` are texts, the
    others numbers. ``note`` says what it shows; ``listing``, which folders each row is made of."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    text_columns: int
    note: str = ""
    listing: list[str] = field(default_factory=list)


@dataclass
class Figure:
    """A figure of a section: its file stem, title, the plot function and its data."""

    stem: str
    title: str
    plot: str  # the name of the function of lifelong.runs.figures that draws it
    data: dict[str, Any]


@dataclass
class Section:
    heading: str
    tables: list[Table]
    figures: list[Figure] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# cells

def stat_cell(values: Sequence[float | None], fmt: str = ".2f") -> str:
    """Mean ± sample std over the seeds' values (:func:`lifelong.metrics.mean_std`; the mean alone
    for one value, ``–`` for none); ``(k/n)`` when only k of n seeds have one."""
    stats = mean_std(values)
    if stats is None:
        return MISSING
    present = sum(v is not None for v in values)
    text = f"{stats[0]:{fmt}}" + (f" ± {stats[1]:{fmt}}" if present > 1 else "")
    return text + (f" ({present}/{len(values)})" if present < len(values) else "")


def param_text(params: dict[str, Any], leave_out: Iterable[str] = ()) -> str:
    """``alpha=2, lam=1`` (numbers to 4 significant digits, other values as compact JSON, cut)."""
    parts = []
    for key, value in params.items():
        if key in leave_out:
            continue
        shown = (f"{value:.4g}" if isinstance(value, float) else
                 json.dumps(value, separators=(",", ":"), default=str))
        parts.append(f"{key}={shown if len(shown) <= 24 else shown[:21] + '...'}")
    return ", ".join(parts) or MISSING


def _seeds_text(outputs: Sequence[Output]) -> str:
    """The seeds of a row's folders, each as often as it occurs (a seed twice: two folders)."""
    return ", ".join(str(s) for s in sorted(o.seed for o in outputs))


def _first_seen(blocks: Iterable[dict]) -> list[str]:
    """The keys of the mappings, in the order they first appear."""
    return list(dict.fromkeys(k for block in blocks for k in block))


Column = tuple[str, Callable[[Output], Any], str]  # heading, value of one folder, number format


def _stat_cells(columns: Sequence[Column], group: Sequence[Output]) -> list[str]:
    return [stat_cell([get(o) for o in group], fmt) for _, get, fmt in columns]


# ---------------------------------------------------------------------------------------------
# what the report reads beside an output folder: runs and their settings

class _Beside:
    """The source, base and retrained runs that output folders name, read once each; what cannot
    be read is ``None``, never an error (the section shows less)."""

    def __init__(self) -> None:
        self.runs: dict[str, Any] = {}
        self.tasks: dict[str, Any] = {}

    def run(self, folder: str | None):
        from lifelong.runs import finished

        if folder is None:
            return None
        if folder not in self.runs:
            try:
                self.runs[folder] = finished.load_runs([Path(folder)])[0]
            except (UserError, OSError, ValueError, RecursionError):  # ValueError: a name with a NUL byte
                self.runs[folder] = None
        return self.runs[folder]

    def train_tasks(self, folder: Path) -> list[int] | str | None:
        """The tasks a run folder trained on (``config.yaml``'s ``train_tasks``, counted from 1),
        ``"all"`` without the setting, ``None`` when the file cannot be read."""
        key = str(folder)
        if key not in self.tasks:
            self.tasks[key] = _read_train_tasks(folder)
        return self.tasks[key]


def _read_train_tasks(folder: Path) -> list[int] | str | None:
    from lifelong.config import parse_train_tasks

    try:
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            return None
        value = config.get("train_tasks")
        return "all" if value is None else parse_train_tasks(value)
    except (OSError, ValueError, yaml.YAMLError, RecursionError, UserError):
        return None


def _base_folder(base: str) -> Path:
    path = Path(base)
    return path.parent if path.name == "model.pt" else path


def task_roles(doc: dict[str, Any], beside: _Beside) -> tuple[list[int], list[int]] | None:
    """``(control, target)`` task numbers (from 1) of an edit or merge: the tasks the source runs
    trained on (target), and the other tasks the base trained on (control); ``None`` when a
    source run's tasks are unknown or all of them."""
    count = len(doc["accuracy"]["class_il"])
    target: set[int] = set()
    for folder in doc["source_runs"]:
        tasks = beside.train_tasks(Path(folder))
        if not isinstance(tasks, list):
            return None
        target.update(t for t in tasks if t <= count)
    base = beside.train_tasks(_base_folder(doc["base"]))
    trained = base if isinstance(base, list) else range(1, count + 1)
    return [t for t in trained if t not in target and t <= count], sorted(target)


def _tasks_mean(values: list[float | None], tasks: list[int] | None) -> float | None:
    """The mean accuracy on ``tasks`` (from 1); ``None`` without tasks or with a task missing."""
    if not tasks:
        return None
    chosen = [values[t - 1] for t in tasks]
    return None if any(v is None for v in chosen) else statistics.fmean(chosen)


def _tasks_text(tasks: list[int] | None) -> str:
    return ",".join(map(str, tasks)) if tasks else MISSING


# ---------------------------------------------------------------------------------------------
# unlearning

UNLEARN_KEYS = {"schema_version", "kind", "complete", "method", "params", "source_run", "benchmark", "source_method",
                "seed", "forget", "forget_count", "forget_digest", "retain_count", "test_count", "before", "accuracy",
                "mia", "mia_feature", "agreement", "compare_to", "wall_seconds", "total_seconds", "retrain_command",
                "command", "recovery"}


def _unlearn_identity(output: Output, beside: _Beside) -> str:
    """What the seeds of one unlearning share: the source run's configuration but its seed (or,
    when it cannot be read, its benchmark and method), the forget set, method and parameters
    (but ``seed``)."""
    from lifelong.runs import finished

    doc = output.doc
    run = beside.run(doc["source_run"])
    source = finished._identity(run) if run is not None else [doc.get("benchmark"), doc.get("source_method")]
    params = {k: v for k, v in doc["params"].items() if k != "seed"}
    return json.dumps([source, doc["forget"], doc["method"], params], sort_keys=True, default=str)


def _retrain_seconds(output: Output, beside: _Beside) -> float | None:
    """The training time of the run the unlearning was compared to: ``train_seconds`` (the
    training loop, as the ledger times retraining), else ``wall_seconds``."""
    run = beside.run(output.doc.get("compare_to"))
    if run is None:
        return None
    try:
        seconds = number(run.metrics.get("train_seconds"), "train_seconds", 0.0)
    except Invalid:  # a value of the wrong type: the wall time instead
        seconds = None
    return seconds if seconds is not None else run.metrics.get("wall_seconds")


def _ratio(output: Output, beside: _Beside) -> float | None:
    retrain, own = _retrain_seconds(output, beside), output.doc["wall_seconds"]
    return None if retrain is None or own is None or retrain <= 0 else own / retrain


def _unlearn_columns(outputs: Sequence[Output], beside: _Beside) -> list[Column]:
    docs = [o.doc for o in outputs]
    columns: list[Column] = [(f"{name} acc. (%)", lambda o, n=name: o.doc["accuracy"].get(n), ".2f")
                             for name in _first_seen(d["accuracy"] for d in docs)]
    if any(d["mia"] is not None for d in docs):
        columns.append(("MIA", lambda o: o.doc["mia"], ".3f"))
    for split in _first_seen(d["agreement"] for d in docs):
        columns.append((f"agree. {split} (%)", lambda o, s=split: o.doc["agreement"].get(s, {}).get("agreement"),
                        ".2f"))
        columns.append((f"KL {split}", lambda o, s=split: o.doc["agreement"].get(s, {}).get("kl"), ".4f"))
    columns += [(f"recovery {name}", lambda o, n=name: o.doc["recovery"].get(n), ".3f")
                for name in _first_seen(d["recovery"] for d in docs)]
    columns += [(name, lambda o, n=name: extra_numbers(o.doc, UNLEARN_KEYS).get(n), ".4g")
                for name in _first_seen(extra_numbers(d, UNLEARN_KEYS) for d in docs)]
    columns.append(("time (s)", lambda o: o.doc["wall_seconds"], ".3f"))
    if any(d.get("compare_to") for d in docs):
        columns.append(("time / retrain", lambda o: _ratio(o, beside), ".3f"))
    return columns


def _groups(outputs: Sequence[Output], key: Callable[[Output], Any]) -> list[list[Output]]:
    """Outputs with equal keys, in the order each key first appears, each sorted by seed."""
    groups: dict[Any, list[Output]] = {}
    for output in outputs:
        groups.setdefault(key(output), []).append(output)
    return [sorted(members, key=lambda o: (o.seed, str(o.path))) for members in groups.values()]


def _source_text(group: Sequence[Output]) -> str:
    doc = group[0].doc
    if len(group) == 1:
        return doc["source_run"]
    what = " on ".join(str(v) for v in (doc.get("source_method"), doc.get("benchmark")) if v is not None)
    return f"{len(group)} runs of {what}" if what else f"{len(group)} runs"


def _unseen_note(docs: Iterable[dict], known: set[str] | Callable[[dict], set[str]]) -> str:
    """The keys of the documents that the section shows neither by name (``known``, or of each
    document) nor as a number."""
    left = _first_seen({k: None for k in other_keys(d, known(d) if callable(known) else known)} for d in docs)
    return f" Also in their metrics.json, not shown: {', '.join(left)}." if left else ""


def unlearning_section(outputs: Sequence[Output], beside: _Beside | None = None) -> Section:
    """The Unlearning table (see the module's docstring)."""
    beside = beside or _Beside()
    columns = _unlearn_columns(outputs, beside)
    groups = _groups(outputs, lambda o: _unlearn_identity(o, beside))
    rows, listing = [], []
    for group in groups:
        doc = group[0].doc
        rows.append([_source_text(group), doc["forget"], doc["method"], param_text(doc["params"], ("seed",)),
                     _seeds_text(group)] + _stat_cells(columns, group))
        listing.append(f"{doc['method']} forgetting {doc['forget']}: "
                       + ", ".join(f"seed {o.seed}: {o.path}" for o in group))
    note = ("Accuracy on the forget set, the retain set and the test set (percent); MIA: the fraction of the forget "
            "set that the membership-inference attack calls members; agreement (percent) and KL (nats) with the "
            "retrained run given to --compare-to; time: the method alone, and its ratio to the retrained run's "
            "training time. Several seeds of one source configuration, forget set, method and parameters: mean ± "
            "sample std over the seeds." + _unseen_note((o.doc for o in outputs), UNLEARN_KEYS))
    headings = ["source run", "forget", "method", "parameters", "seeds"] + [c[0] for c in columns]
    return Section("Unlearning", [Table("Unlearning", headings, rows, 5, note, listing)])


# ---------------------------------------------------------------------------------------------
# edits (LiNeS)

WEIGHT_KEYS = {"schema_version", "kind", "complete", "method", "params", "base", "source_runs", "benchmark",
               "backbone", "seed", "task_classes", "accuracy", "before", "wall_seconds", "command"}


def edit_label(doc: dict[str, Any]) -> str:
    """An edit's curve: LiNeS with ``β = 1 − α`` (the single-task rule), plain interpolation
    (``β = 0``), or LiNeS with a fixed β; another method by its name and parameters but α."""
    params = doc["params"]
    if doc["method"] != "lines":
        return f"{doc['method']} ({param_text(params, ('alpha', 'num_layers'))})"
    alpha, beta = params["alpha"], params.get("beta")
    if beta is None:
        return "LiNeS (β not recorded)"
    if beta == 0:
        return "plain interpolation (β = 0)"
    if abs(alpha + beta - 1.0) < 1e-9:
        return "LiNeS (β = 1 − α)"
    return f"LiNeS (β = {beta:g})"


def _with_roles(outputs: Sequence[Output], beside: _Beside) -> dict[int, tuple[list[int], list[int]] | None]:
    return {id(o): task_roles(o.doc, beside) for o in outputs}


def _labels(groups: list[list[Output]], base: Callable[[Output], str], detail: Callable[[Output], str]) -> list[str]:
    """Each group's label; groups that would share one get ``detail`` appended."""
    names = [base(g[0]) for g in groups]
    return [f"{name} [{detail(g[0])}]" if names.count(name) > 1 else name for name, g in zip(names, groups)]


def _edit_rows(scenario: str, groups: list[list[Output]], labels: list[str], roles: dict, extras: list[str]
               ) -> tuple[list[list[str]], dict[str, Any]]:
    """The table's rows (one per edit and α) and the trade-off figure's data of one scenario."""
    width = max(len(o.doc["accuracy"][scenario]) for g in groups for o in g)
    rows, curves = [], {}
    for label, group in zip(labels, groups):
        role = roles[id(group[0])]
        curve: dict[str, list] = {"alpha": [], "control": [], "control_std": [], "target": [], "target_std": []}
        for at in sorted(_groups(group, lambda o: o.doc["params"]["alpha"]), key=lambda g: g[0].doc["params"]["alpha"]):
            accs = [o.doc["accuracy"][scenario] for o in at]
            control = [_tasks_mean(a, role[0] if role else None) for a in accs]
            target = [_tasks_mean(a, role[1] if role else None) for a in accs]
            per_task = [stat_cell([a[j] if j < len(a) else None for a in accs]) for j in range(width)]
            rows.append([label, f"{at[0].doc['params']['alpha']:g}", stat_cell([o.doc["params"].get("beta")
                         for o in at]), _seeds_text(at), stat_cell(control), stat_cell(target), *per_task,
                         *(stat_cell([extra_numbers(o.doc, WEIGHT_KEYS).get(n) for o in at], ".4g") for n in extras)])
            _add_point(curve, at[0].doc["params"]["alpha"], control, target)
        if curve["alpha"]:
            curves[label] = {**curve, "seeds": len({o.seed for o in group})}
    return rows, curves


def _add_point(curve: dict[str, list], alpha: float, control: list, target: list) -> None:
    """A point of a trade-off curve: mean and std of the seeds' control and target accuracy."""
    c, t = mean_std(control), mean_std(target)
    if c is None or t is None or None in control or None in target:
        return
    curve["alpha"].append(alpha)
    curve["control"].append(c[0])
    curve["control_std"].append(c[1])
    curve["target"].append(t[0])
    curve["target_std"].append(t[1])


def edit_section(outputs: Sequence[Output], beside: _Beside | None = None) -> Section:
    """The Edits (LiNeS) tables and trade-off figures (see the module's docstring)."""
    beside = beside or _Beside()
    roles = _with_roles(outputs, beside)

    def key(o: Output) -> str:
        doc = o.doc
        return json.dumps([doc.get("benchmark"), doc.get("backbone"), edit_label(doc), roles[id(o)]], default=str)

    ordered = sorted(outputs, key=lambda o: (o.doc["params"]["alpha"], o.seed))
    groups = _groups(ordered, key)
    labels = _labels(groups, lambda o: edit_label(o.doc), lambda o: _role_text(o, roles[id(o)]))
    extras = _first_seen(extra_numbers(o.doc, WEIGHT_KEYS) for o in outputs)
    tables, figs = [], []
    for scenario, name in SCENARIO_NAMES.items():
        rows, curves = _edit_rows(scenario, groups, labels, roles, extras)
        width = len(rows[0]) - 6 - len(extras)
        columns = ["edit", "α", "β", "seeds", "control (%)", "target (%)"] + [f"t{j + 1}" for j in range(width)] + extras
        tables.append(Table(f"Edits, {name}", columns, rows, 4, _edit_note(outputs, roles, name), [
            f"{label}: " + ", ".join(f"α {o.doc['params']['alpha']:g} seed {o.seed}: {o.path}" for o in group)
            for label, group in zip(labels, groups)] if scenario == "class_il" else []))
        if curves:
            figs.append(Figure(f"edit_tradeoff_{scenario}", f"Edits: target against control accuracy over α, {name}",
                               "plot_tradeoff", curves))
    return Section("Edits (LiNeS)", tables, figs)


def _role_text(output: Output, role: tuple[list[int], list[int]] | None) -> str:
    control, target = role or (None, None)
    return f"{output.doc.get('benchmark')}, control {_tasks_text(control)}, target {_tasks_text(target)}"


def _edit_note(outputs: Sequence[Output], roles: dict, name: str) -> str:
    unknown = sum(roles[id(o)] is None for o in outputs)
    left = (f" For {unknown} edit{'s' if unknown != 1 else ''} the tasks of the fine-tuned run are unknown "
            f"(its config.yaml cannot be read, or it trained on every task): no control or target."
            if unknown else "")
    return (f"{name} accuracy (percent) of each edited model on each task (t1, t2, ...), and its mean on the target "
            f"tasks (those the fine-tuned run trained on) and on the control tasks (the others the base trained on); "
            f"mean ± sample std over the seeds at each α." + left + _unseen_note((o.doc for o in outputs), WEIGHT_KEYS))


# ---------------------------------------------------------------------------------------------
# merges

def merge_label(doc: dict[str, Any]) -> str:
    """A merge's kind: its method (with TIES' k), ``+ LiNeS`` when LiNeS scaled it."""
    params = doc["params"]
    name = doc["method"].replace("_", " ")
    if isinstance(params.get("k"), (int, float)) and not isinstance(params.get("k"), bool):
        name += f" (k {params['k']:g})"
    return name + (" + LiNeS" if params.get("lines") is True else "")


def merge_scale(doc: dict[str, Any]) -> float | None:
    """The merge's scale: β with LiNeS, else λ; ``None`` when the parameters hold neither number."""
    value = doc["params"].get("beta" if doc["params"].get("lines") is True else "lam")
    try:
        return number(value, "scale")
    except Invalid:  # not a number: not a point of the figure
        return None


def _merge_rows(scenario: str, ordered: list[Output], roles: dict, extras: list[str]) -> list[list[str]]:
    width = max(len(o.doc["accuracy"][scenario]) for o in ordered)
    rows = []
    for o in ordered:
        acc, role = o.doc["accuracy"][scenario], roles[id(o)]
        target = role[1] if role else None
        rows.append([merge_label(o.doc), param_text(o.doc["params"], ("k", "lines")), str(o.seed),
                     str(len(o.doc["source_runs"])), _tasks_text(target), stat_cell([_tasks_mean(acc, target)]),
                     stat_cell([_tasks_mean(acc, list(range(1, len(acc) + 1)))]),
                     *(stat_cell([acc[j] if j < len(acc) else None]) for j in range(width)),
                     *(stat_cell([extra_numbers(o.doc, _weight_keys(o.doc)).get(n)], ".4g") for n in extras)])
    return rows


def _merge_curves(scenario: str, outputs: Sequence[Output], roles: dict) -> dict[str, Any]:
    """Per kind of merge made at several scales: the mean accuracy on the merged tasks (all tasks
    when they are unknown) at each scale, mean and std over seeds."""
    def key(o: Output) -> str:
        role = roles[id(o)]
        return json.dumps([o.doc.get("benchmark"), o.doc.get("backbone"), merge_label(o.doc),
                           len(o.doc["source_runs"]), role[1] if role else None], default=str)

    scaled = sorted((o for o in outputs if merge_scale(o.doc) is not None), key=lambda o: merge_scale(o.doc))
    curves = {}
    for group in _groups(scaled, key):
        xs = sorted({merge_scale(o.doc) for o in group})
        if len(xs) < 2:
            continue
        points = []
        for x in xs:
            values = [_merged_mean(o, scenario, roles) for o in group if merge_scale(o.doc) == x]
            points.append(mean_std(values) if None not in values else None)
        kept = [(x, p) for x, p in zip(xs, points) if p is not None]
        if len(kept) >= 2:
            label = merge_label(group[0].doc) + f", {len(group[0].doc['source_runs'])} models"
            curves[label] = {"x": [x for x, _ in kept], "mean": [p[0] for _, p in kept],
                             "std": [p[1] for _, p in kept], "seeds": len({o.seed for o in group})}
    return curves


def _merged_mean(o: Output, scenario: str, roles: dict) -> float | None:
    acc, role = o.doc["accuracy"][scenario], roles[id(o)]
    return _tasks_mean(acc, role[1] if role else list(range(1, len(acc) + 1)))


def _rmm_note(outputs: Sequence[Output]) -> str:
    rmm = any(o.doc["method"] == "rmm" for o in outputs)
    return " RMM merges: at the basis size written (--basis); every size in Merges: RMM." if rmm else ""


def merge_section(outputs: Sequence[Output], beside: _Beside | None = None) -> Section:
    """The Merges tables and, when some kind of merge was made at several scales, its figure."""
    beside = beside or _Beside()
    roles = _with_roles(outputs, beside)
    ordered = sorted(outputs, key=lambda o: (merge_label(o.doc), merge_scale(o.doc) or 0.0, o.seed, str(o.path)))
    extras = _first_seen(extra_numbers(o.doc, _weight_keys(o.doc)) for o in outputs)
    tables, figs = [], []
    for scenario, name in SCENARIO_NAMES.items():
        rows = _merge_rows(scenario, ordered, roles, extras)
        width = len(rows[0]) - 7 - len(extras)
        columns = (["merge", "parameters", "seed", "models", "merged tasks", "merged tasks (%)", "all tasks (%)"]
                   + [f"t{j + 1}" for j in range(width)] + extras)
        note = (f"{name} accuracy (percent) of each merged model on each task, its mean on the merged tasks (those "
                f"the merged runs trained on) and on all tasks." + _rmm_note(outputs)
                + _unseen_note((o.doc for o in outputs), _weight_keys))
        listing = [f"{merge_label(o.doc)} ({param_text(o.doc['params'], ('k', 'lines'))}), seed {o.seed}: {o.path}"
                   for o in ordered] if scenario == "class_il" else []
        tables.append(Table(f"Merges, {name}", columns, rows, 5, note, listing))
        curves = _merge_curves(scenario, outputs, roles)
        if curves:
            figs.append(Figure(f"merge_scale_{scenario}", f"Merges: accuracy on the merged tasks over the scale, {name}",
                               "plot_merge_scale", curves))
    return Section("Merges", tables, figs)


# ---------------------------------------------------------------------------------------------
# RMM (reversible merging of LoRA adapters)

RMM_KEYS = {"per_basis", "kept", "plain", "adapters", "adapter_numbers"}
RMM_SCENARIOS = ("task_il", "class_il")


def _weight_keys(doc: dict[str, Any]) -> set[str]:
    """The keys a section shows by name: an RMM merge's ``per_basis``, ``kept``, ... are the RMM section's."""
    return WEIGHT_KEYS | RMM_KEYS if doc["method"] == "rmm" else WEIGHT_KEYS


def adapter_tasks(doc: dict[str, Any]) -> list[int]:
    """The tasks (from 1) of an RMM merge's adapters (``adapters``); every task when it names none."""
    named = sorted({a["task"] for a in doc.get("adapters") or []})
    return named or list(range(1, len(doc["accuracy"]["class_il"]) + 1))


def _rmm_identity(output: Output, beside: _Beside) -> str:
    """What the seeds of one RMM configuration share: benchmark, backbone, the source runs'
    configurations but their seeds (when readable), the adapters' tasks and the parameters but
    ``basis`` (the size of the artefact written; every size is measured)."""
    from lifelong.runs import finished

    doc = output.doc
    sources = [beside.run(folder) for folder in doc["source_runs"]]
    params = {k: v for k, v in doc["params"].items() if k != "basis"}
    return json.dumps([doc.get("benchmark"), doc.get("backbone"), [finished._identity(r) if r is not None else None
                       for r in sources], adapter_tasks(doc), params], sort_keys=True, default=str)


def _rmm_label(doc: dict[str, Any]) -> str:
    params = doc["params"]
    return (f"{doc.get('benchmark') or 'RMM'}, a basis per {params.get('per', '?')}, "
            f"{params.get('num_adapters', '?')} adapters")


def _unique(labels: list[str]) -> list[str]:
    """The labels, a repeated one numbered (``#2``, ...) so that each names one curve."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _mean_over_tasks(block: dict[str, list] | None, scenario: str, doc: dict[str, Any]) -> float | None:
    """The mean accuracy of ``block`` (``{class_il, task_il}``) on the adapters' tasks; ``None`` without it."""
    return None if block is None else _tasks_mean(block[scenario], adapter_tasks(doc))


def _at_basis(doc: dict[str, Any], k: int) -> dict[str, Any] | None:
    return next((e for e in doc["per_basis"] if e["basis"] == k), None)


def _basis_accuracy(doc: dict[str, Any], k: int) -> dict[str, list] | None:
    entry = _at_basis(doc, k)
    return entry["accuracy"] if entry else None


def _share(doc: dict[str, Any], entry: dict[str, Any] | None) -> float | None:
    """Numbers stored at a basis size over those of every adapter kept."""
    total = doc.get("adapter_numbers")
    if entry is None or entry["stored_numbers"] is None or not total:
        return None
    return entry["stored_numbers"] / total


def _plain_text(doc: dict[str, Any]) -> str:
    lam = doc["plain"].get("lam")
    return MISSING if lam is None else f"{lam:.4g}"


def _rmm_model_rows(group: Sequence[Output]) -> list[tuple[str, Callable[[dict], dict | None], Callable]]:
    """``(model, its accuracies in a document, its other cells)`` of each row of a group."""
    lam = _plain_text(group[0].doc)

    def none(_doc: dict) -> list:
        return [None, None, None, None]

    def kept(doc: dict) -> list:
        return [None, None, doc.get("adapter_numbers"), 1.0]

    rows = [("every adapter kept", lambda d: d["kept"], kept),
            (f"plain merge of ΔW, λ = {lam}", lambda d: d["plain"].get("delta"), none),
            (f"plain merge of A and B, λ = {lam}", lambda d: d["plain"].get("factors"), none)]
    for k in sorted({e["basis"] for o in group for e in o.doc["per_basis"]}):
        def cells(doc: dict, k: int = k) -> list:
            entry = _at_basis(doc, k)
            errors = entry["reconstruction_error"] if entry else {}
            return [errors.get("delta_mean"), errors.get("factors_mean"), entry["stored_numbers"] if entry else None,
                    _share(doc, entry)]
        rows.append((f"RMM, basis {k}", lambda d, k=k: _basis_accuracy(d, k), cells))
    return rows


def _rmm_rows(label: str, group: Sequence[Output]) -> list[list[str]]:
    """A group's rows: every adapter kept, the two plain merges, RMM at each basis size; mean
    accuracy over the adapters' tasks and the other cells, mean ± std over the seeds."""
    rows = []
    for model, accuracies, others in _rmm_model_rows(group):
        accs = [stat_cell([_mean_over_tasks(accuracies(o.doc), s, o.doc) for o in group]) for s in RMM_SCENARIOS]
        extra = [others(o.doc) for o in group]
        rows.append([label, model, _seeds_text(group), *accs,
                     *(stat_cell([e[i] for e in extra], fmt) for i, fmt in enumerate((".3f", ".3f", ".0f", ".2f")))])
    return rows


def _rmm_curve(group: Sequence[Output], scenario: str) -> dict[str, Any] | None:
    """The accuracy-vs-basis-size curve of a group: mean and std over the seeds of the mean on
    the adapters' tasks at each basis size all seeds have; the same of every adapter kept and of
    the plain merge of ΔW (``None`` when a seed lacks it)."""
    def stats(get: Callable[[dict], dict | None]) -> tuple[float, float] | None:
        values = [_mean_over_tasks(get(o.doc), scenario, o.doc) for o in group]
        return None if None in values else mean_std(values)

    curve: dict[str, Any] = {"x": [], "mean": [], "std": [], "seeds": len(group)}
    for k in sorted({e["basis"] for o in group for e in o.doc["per_basis"]}):
        point = stats(lambda d, k=k: _basis_accuracy(d, k))
        if point is not None:
            curve["x"].append(k)
            curve["mean"].append(point[0])
            curve["std"].append(point[1])
    if not curve["x"]:
        return None
    return {**curve, "kept": stats(lambda d: d["kept"]), "plain": stats(lambda d: d["plain"].get("delta")),
            "plain_label": f"plain merge of ΔW, λ = {_plain_text(group[0].doc)}"}


def rmm_section(outputs: Sequence[Output], beside: _Beside | None = None) -> Section:
    """The RMM table (one row per model per group of seeds) and its accuracy-vs-basis-size figures."""
    beside = beside or _Beside()
    groups = _groups(outputs, lambda o: _rmm_identity(o, beside))
    labels = _unique(_labels(groups, lambda o: _rmm_label(o.doc), lambda o: param_text(o.doc["params"], ("basis",))))
    rows = [row for label, group in zip(labels, groups) for row in _rmm_rows(label, group)]
    columns = ["configuration", "model", "seeds", "task-IL (%)", "class-IL (%)", "ΔW rel. error",
               "factor rel. error", "stored numbers", "stored share"]
    note = ("Accuracy (percent) of each task through its own adapter, rebuilt by RMM from a basis of each size, or "
            "kept, and of the plain merges of the same adapters (one model for every task), as the mean over the "
            "adapters' tasks (every task when the folder does not name its adapters); the rebuilt adapters' relative "
            "error on their updates ΔW and on their factors (mean over the adapters); the numbers stored (bases and "
            "coefficients), and their share of every adapter's. Folders of one configuration (but the basis size "
            "written, --basis) that differ by the seed: mean ± sample std over them. RMM and every adapter kept "
            "score each task through its own adapter: their class-IL is not task-agnostic.")
    listing = [f"{label}: " + ", ".join(f"seed {o.seed}: {o.path}" for o in group)
               for label, group in zip(labels, groups)]
    figs = []
    for scenario in SCENARIO_NAMES:
        curves = {label: c for label, group in zip(labels, groups) if (c := _rmm_curve(group, scenario)) is not None}
        if curves:
            figs.append(Figure(f"rmm_basis_{scenario}", "RMM: accuracy over the basis size, "
                               f"{SCENARIO_NAMES[scenario]}", "plot_basis_size", curves))
    return Section("Merges: RMM", [Table("RMM: accuracy over the basis size", columns, rows, 3, note, listing)], figs)


# ---------------------------------------------------------------------------------------------
# language models (lifelong lm train)

LM_UNGROUPED = ("seed", "data")  # config.yaml keys in which the seeds of one configuration may differ


def _lm_config(output: Output) -> dict[str, Any] | None:
    """The folder's ``config.yaml`` without the seed and the data folder, or ``None`` unreadable."""
    try:
        config = yaml.safe_load((output.path / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        return None
    if not isinstance(config, dict):
        return None
    return {str(k): v for k, v in config.items() if k not in LM_UNGROUPED}


def _lm_identity(output: Output) -> str:
    """Folders of one configuration (but the seed) share it; without a readable config.yaml, the
    folder is a configuration of its own."""
    config = _lm_config(output)
    return str(output.path) if config is None else json.dumps(config, sort_keys=True, default=str)


def _lm_labels(groups: list[list[Output]]) -> list[str]:
    """``A → B`` (``A+B``: one task on both), and the settings in which the groups differ."""
    configs = [_lm_config(g[0]) or {} for g in groups]
    keys = [k for k in _first_seen(configs) if k != "stream" and len({json.dumps(c.get(k), default=str)
                                                                        for c in configs}) > 1]
    labels = []
    for group, config in zip(groups, configs):
        base = " → ".join(group[0].doc["stream"])
        detail = param_text({k: config.get(k) for k in keys})
        labels.append(base if not keys else f"{base} [{detail}]")
    return _unique(labels)


def _final_loss(doc: dict[str, Any], corpus: str) -> float | None:
    """The held-out loss of ``corpus`` after the last task (``None``: not in the folder's corpora)."""
    return doc["loss_matrix"][-1][doc["corpora"].index(corpus)] if corpus in doc["corpora"] else None


def _lm_measures(doc: dict[str, Any]) -> tuple[float | None, float | None]:
    """Forgetting (:func:`lifelong.metrics.loss_forgetting`; ``None`` for one task or an unfinished
    square) and the mean loss after the last task, from the folder's loss matrix."""
    from lifelong.metrics import loss_forgetting

    L = doc["loss_matrix"]
    last = L[-1]
    mean = None if None in last else sum(last) / len(last)
    square = len(L) == len(doc["corpora"]) == len(doc["stream"]) and all(None not in row for row in L)
    return (loss_forgetting(L) if square else None), mean


def _lm_curve(group: Sequence[Output], corpus: str) -> dict[str, Any] | None:
    """``corpus``'s held-out loss over the training tokens (0: before training), mean and std over
    the group's seeds whose points fall at the same tokens as the first's (the others left out)."""
    series = []
    for o in group:
        doc = o.doc
        if corpus not in doc["corpora"]:
            continue
        j = doc["corpora"].index(corpus)
        points = ([(0, doc["init_losses"][j])] if doc["init_losses"] is not None else [])
        points += [(p["tokens"], p["losses"][j]) for p in doc["curve"]]
        points = [(x, y) for x, y in points if y is not None]
        if points:
            series.append(points)
    if not series:
        return None
    xs = [x for x, _ in series[0]]
    same = [s for s in series if [x for x, _ in s] == xs]
    stats = [mean_std([s[i][1] for s in same]) for i in range(len(xs))]
    return {"x": xs, "mean": [m for m, _ in stats], "std": [sd for _, sd in stats], "seeds": len(same)}


def lm_section(outputs: Sequence[Output]) -> Section:
    """The language-model table (per configuration, mean ± std over seeds), each folder's loss
    matrix, and one figure per corpus of its held-out loss over the training tokens."""
    groups = _groups(outputs, _lm_identity)
    labels = _lm_labels(groups)
    corpora = _first_seen({c: None for c in o.doc["corpora"]} for o in outputs)
    columns = ["configuration", "seeds"] + [f"final loss {c}" for c in corpora] + ["forgetting", "final mean loss"]
    rows = [_lm_row(label, group, corpora) for label, group in zip(labels, groups)]
    note = ("Held-out next-token loss (nats per token) of each corpus after the last task of the stream; forgetting: "
            "the rise of each earlier corpus's loss above its best after being learnt (lifelong.metrics.loss_forgetting; "
            "– for one task, such as a joint A+B); the mean over the corpora. Folders whose config.yaml is the same but "
            "the seed and the data folder: mean ± sample std over the seeds.")
    listing = [f"{label}: " + ", ".join(f"seed {o.seed}: {o.path}" for o in group) for label, group in zip(labels, groups)]
    matrix_rows = [[str(o.path), str(o.seed), after] + [MISSING if v is None else f"{v:.3f}" for v in values]
                   for o in outputs for after, values in _matrix_lines(o.doc, corpora)]
    matrices = Table("Language models: loss matrices", ["folder", "seed", "after"] + list(corpora), matrix_rows, 3,
                     "Each folder's held-out loss of every corpus before training (init) and after each task.")
    figs = [fig for c in corpora if (fig := _lm_figure(c, labels, groups)) is not None]
    return Section("Language models", [Table("Language models", columns, rows, 2, note, listing), matrices], figs)


def _lm_row(label: str, group: Sequence[Output], corpora: Sequence[str]) -> list[str]:
    measures = [_lm_measures(o.doc) for o in group]
    return ([label, _seeds_text(group)] + [stat_cell([_final_loss(o.doc, c) for o in group], ".3f") for c in corpora]
            + [stat_cell([m[0] for m in measures], ".3f"), stat_cell([m[1] for m in measures], ".3f")])


def _lm_figure(corpus: str, labels: Sequence[str], groups: Sequence[Sequence[Output]]) -> Figure | None:
    curves = {label: curve for label, group in zip(labels, groups) if (curve := _lm_curve(group, corpus)) is not None}
    if not curves:
        return None
    return Figure(f"lm_loss_{_stem(corpus)}", f"Held-out loss of {corpus} over the training tokens",
                  "plot_loss_curves", curves)


def _matrix_lines(doc: dict[str, Any], corpora: Sequence[str]) -> list[tuple[str, list[float | None]]]:
    def spread(row: list[float | None]) -> list[float | None]:
        return [row[doc["corpora"].index(c)] if c in doc["corpora"] else None for c in corpora]
    lines = [("init", spread(doc["init_losses"]))] if doc["init_losses"] is not None else []
    return lines + [(doc["stream"][i], spread(row)) for i, row in enumerate(doc["loss_matrix"])]


def _stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


# ---------------------------------------------------------------------------------------------
# all of them

def skipped_section(skipped: Sequence[tuple[Path, str]]) -> Section:
    rows = [[str(path), why] for path, why in skipped]
    note = "Folders of lifelong unlearn, edit, merge or lm train whose metrics.json the report cannot read, and why."
    return Section("Left out", [Table("Folders left out", ["folder", "why"], rows, 2, note)])


def sections(outputs: Outputs) -> list[Section]:
    """The report's sections of ``outputs``, those that have folders, in order: Unlearning, Edits
    (LiNeS), Merges, Merges: RMM, Language models, and the folders left out."""
    beside = _Beside()
    found = []
    if outputs.unlearn:
        found.append(unlearning_section(outputs.unlearn, beside))
    if outputs.edit:
        found.append(edit_section(outputs.edit, beside))
    if outputs.merge:
        found.append(merge_section(outputs.merge, beside))
    rmm = [o for o in outputs.merge if o.doc["method"] == "rmm"]
    if rmm:
        found.append(rmm_section(rmm, beside))
    if outputs.lm:
        found.append(lm_section(outputs.lm))
    if outputs.skipped:
        found.append(skipped_section(outputs.skipped))
    return found


def format_table(table: Table) -> str:
    """A table as aligned text: text columns left, numbers right."""
    widths = [max(len(c), *(len(r[i]) for r in table.rows)) if table.rows else len(c)
              for i, c in enumerate(table.columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < table.text_columns else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    header = line(table.columns)
    return "\n".join([table.title, header, "-" * len(header), *(line(r) for r in table.rows)])


def format_sections(found: Sequence[Section]) -> str:
    """Every table of the sections as text, separated by blank lines."""
    return "\n\n".join(format_table(t) for s in found for t in s.tables)
