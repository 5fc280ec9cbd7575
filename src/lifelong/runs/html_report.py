"""A self-contained HTML report of finished runs: the summary table and every figure.

:func:`write_report` writes the figures as PNG files into the output folder and embeds the same
bytes in ``report.html`` as base64 data URIs, so the page can be mailed or moved on its own.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Callable, Sequence

from lifelong.runs import figures, sections
from lifelong.runs import finished as runs
from lifelong.runs.outputs import Outputs
from lifelong.errors import UserError
from lifelong.metrics import NOT_SHOWN

_FIGURES: tuple[tuple[str, str, Callable[[Sequence], Any], Callable[..., Path], bool], ...] = (
    # (file stem, heading, data function, plot function, whether it colours by configuration)
    ("average_accuracy", "Average accuracy on the tasks seen so far", figures.average_accuracy_after_each_task,
     figures.plot_average_accuracy, True),
    ("accuracy_matrix", "Accuracy matrices (mean over seeds)", figures.matrix_mean_std,
     figures.plot_accuracy_matrices, False),
    ("task_accuracy", "Accuracy of each task as training goes on", figures.task_accuracy_curves,
     figures.plot_task_accuracy_curves, False),
    ("forgetting", "Forgetting per task", figures.forgetting_per_task, figures.plot_forgetting, True),
)

_COLUMNS = (("average_accuracy", "avg. accuracy (%)"), ("average_incremental_accuracy", "avg. incremental (%)"),
            ("forgetting", "forgetting"), ("backward_transfer", "BWT"), ("forward_transfer", "FWT"))

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; margin-bottom: 1em; }
.wide { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f0f0f0; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0 1.5em; }
.note { color: #666; font-size: 0.9em; }
code { font-size: 0.9em; }
"""


def _fmt(stat: dict[str, float] | None, seeds: int) -> str:
    if stat is None:
        return "–"
    return f"{stat['mean']:.2f}" + (f" ± {stat['std']:.2f}" if seeds > 1 else "")


def _cell(row: dict[str, Any], scenario: str, key: str, seeds: int) -> str:
    """A metric's cell; n/a for one that does not measure its name in this scenario."""
    return "n/a" if (scenario, key) in NOT_SHOWN else _fmt(row[scenario][key], seeds)


def _summary_html(rows: list[dict[str, Any]]) -> str:
    """One table per scenario (class-IL, task-IL), so that the table fits the page's width."""
    e = html.escape
    tables = []
    for scenario in figures.SCENARIOS:
        head = [f"<tr><th>configuration ({e(figures.SCENARIO_NAMES[scenario])})</th><th>complete / runs</th>"]
        head += [f"<th>{e(name)}</th>" for _, name in _COLUMNS]
        head.append("<th>wall time (s)</th></tr>")
        body = []
        for row in rows:
            n = len(row["seeds"])
            cells = [f"<td>{e(row['label'])}</td>", f"<td class=num>{n} / {row['runs']}</td>"]
            cells += [f"<td class=num>{e(_cell(row, scenario, key, n))}</td>" for key, _ in _COLUMNS]
            cells.append(f"<td class=num>{e(_fmt(row['wall_seconds'], n))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        tables.append("<div class=wide><table>\n" + "".join(head) + "\n" + "\n".join(body) + "\n</table></div>")
    return "\n".join(tables)


_ONLINE_COLUMNS = (("a_auc", "A_auc (%)"), ("a_last", "A_last (%)"), ("a_avg", "A_avg (%)"), ("f_last", "F_last"))


def _online_html(rows: list[dict[str, Any]]) -> str:
    """The anytime metrics' table (configurations with anytime evaluation only), or nothing."""
    e = html.escape
    body = []
    for row in rows:
        if row["online"] is None:
            continue
        n = len(row["seeds"])
        cells = [f"<td>{e(row['label'])}</td>"] + [f"<td class=num>{e(_fmt(row['online'][key], n))}</td>"
                                                   for key, _ in _ONLINE_COLUMNS]
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        return ""
    head = "<tr><th>configuration (anytime evaluation)</th>" + "".join(f"<th>{e(n)}</th>" for _, n in _ONLINE_COLUMNS)
    return ("<p class=note>Anytime evaluation, on the test examples of the classes seen so far (lifelong.anytime): "
            "A_auc the mean of the periodic accuracies, A_last and A_avg the last and the mean accuracy at task "
            "ends, F_last the mean per-class forgetting (points).</p>\n<div class=wide><table>\n" + head
            + "</tr>\n" + "\n".join(body) + "\n</table></div>")


def anytime_figure(configurations: list[runs.Configuration], out: Path) -> tuple[str, Path | None, str] | None:
    """The accuracy-over-examples figure (``anytime_accuracy.png``) of the configurations whose
    complete runs evaluated anytime; ``None`` when none did."""
    data, colors = {}, figures.label_colors([c.label for c in configurations])
    for conf in configurations:
        curves = [run.anytime_curve() for run in conf.complete_runs]
        if curves and all(c is not None for c in curves):
            stats = figures.anytime_accuracy_curve(curves)
            if stats is not None:
                data[conf.label] = stats
    if not data:
        return None
    title = "Accuracy over the examples seen (anytime evaluation)"
    left = [c.label for c in configurations if c.label not in data]
    note = f"Not shown: {', '.join(left)} (no anytime evaluation)." if left else ""
    return title, figures.plot_anytime_accuracy(data, title, out / "anytime_accuracy.png", colors=colors), note


def _run_html(run: runs.Run) -> str:
    """One run in the listing; an incomplete one says how far it got."""
    text = f"seed {run.seed}: <code>{html.escape(str(run.path))}</code>"
    if run.complete:
        return text
    status = run.metrics.get("status") or "stopped"
    return (f"{text} <strong>(incomplete: {html.escape(status)} after {run.tasks_trained} of "
            f"{run.metrics['num_tasks']} tasks; left out of the means and figures)</strong>")


def _runs_html(configurations: list[runs.Configuration]) -> str:
    items = [f"<li>{html.escape(conf.label)}: {', '.join(_run_html(r) for r in conf.runs)}</li>"
             for conf in configurations]
    return "<ul class=note>\n" + "\n".join(items) + "\n</ul>"


def _image_html(png: Path, alt: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}">'


def _left_out_note(incomplete: list[str], joint: list[str]) -> str:
    """Why configurations are not in a figure: no complete run, or one row (joint training)."""
    reasons = [f"{label} (no complete run)" for label in incomplete]
    if joint:
        reasons.append(f"{', '.join(joint)} (one row: trained on all tasks at once)")
    return f"Not shown: {'; '.join(reasons)}." if reasons else ""


def write_figures(configurations: list[runs.Configuration], out: Path) -> list[tuple[str, Path | None, str]]:
    """Write every figure of ``configurations`` into ``out`` as ``<figure>_<scenario>.png``.
    Returns ``(heading, png or None, note)`` per figure, in report order; a figure that no
    configuration has data for (per-task curves and forgetting when all runs are joint training)
    is ``None`` with a note saying why. Configurations without data for a figure are named in
    its note, as are those without a complete run (figures are made of complete runs only)."""
    written = []
    colors = figures.label_colors([c.label for c in configurations])
    for stem, heading, data_fn, plot_fn, colored in _FIGURES:
        for scenario in figures.SCENARIOS:
            name = figures.SCENARIO_NAMES[scenario]
            data = {c.label: data_fn(c.matrices(scenario)) for c in configurations if c.complete_runs}
            note = _left_out_note([c.label for c in configurations if not c.complete_runs],
                                  [label for label, d in data.items() if d is None])
            data = {label: d for label, d in data.items() if d is not None}
            title = f"{heading}, {name}"
            png = None
            if data:
                extra = {"colors": colors} if colored else {}
                png = plot_fn(data, title, out / f"{stem}_{scenario}.png", **extra)
            written.append((title, png, note))
    return written


def write_report(run_dirs: Sequence[Path], out: Path) -> Path:
    """Read the run folders (:func:`lifelong.runs.finished.load_runs`) and write their report
    (:func:`write_runs_report`); returns the HTML path."""
    return write_runs_report(runs.load_runs(run_dirs), out)


def _table_html(table: sections.Table) -> str:
    """A section's table (:class:`lifelong.runs.sections.Table`), its note and its folders."""
    e = html.escape
    head = "<tr>" + "".join(f"<th>{e(c)}</th>" for c in table.columns) + "</tr>"
    body = ["<tr>" + "".join(f"<td>{e(c)}</td>" if i < table.text_columns else f"<td class=num>{e(c)}</td>"
                             for i, c in enumerate(row)) + "</tr>" for row in table.rows]
    parts = [f"<h3>{e(table.title)}</h3>"] + ([f"<p class=note>{e(table.note)}</p>"] if table.note else [])
    parts.append("<div class=wide><table>\n" + head + "\n" + "\n".join(body) + "\n</table></div>")
    if table.listing:
        parts.append("<ul class=note>\n" + "\n".join(f"<li>{e(item)}</li>" for item in table.listing) + "\n</ul>")
    return "\n".join(parts)


def sections_html(found: Sequence[sections.Section], out: Path) -> list[str]:
    """The HTML of the sections of unlearning, edit and merge folders, their figures written into
    ``out`` as ``<stem>.png`` and embedded."""
    parts = []
    for section in found:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        parts += [_table_html(table) for table in section.tables]
        for fig in section.figures:
            png = getattr(figures, fig.plot)(fig.data, fig.title, out / f"{fig.stem}.png")
            parts += [f"<h3>{html.escape(fig.title)}</h3>", _image_html(png, fig.title)]
    return parts


def _runs_parts(configurations: list[runs.Configuration], out: Path) -> tuple[str, list[str]]:
    """The page's title and parts for the runs: the summary tables and the figures."""
    rows = figures.summary_table(configurations)
    first = configurations[0].runs[0].metrics
    n = len(configurations)
    title = f"{first['benchmark']}, {first['num_tasks']} tasks: {n} configuration{'s' if n > 1 else ''}"
    e = html.escape
    parts = [
        "<h2>Summary</h2>",
        "<p class=note>Mean ± sample standard deviation over the complete runs' seeds, from each run's "
        "metrics.json; runs that diverged or were interrupted are counted in <em>complete / runs</em> and "
        "left out of the means and the figures. Accuracies in percent, forgetting and transfer in percentage "
        "points; – where a run has no task sequence (joint training) or no run is complete. "
        + " ".join(f"n/a: {why}." for why in NOT_SHOWN.values()) + "</p>",
        _summary_html(rows),
    ]
    parts += [table for table in [_online_html(rows)] if table]
    anytime = anytime_figure(configurations, out)
    for heading, png, note in ([anytime] if anytime else []) + write_figures(configurations, out):
        parts.append(f"<h2>{e(heading)}</h2>")
        if note:
            parts.append(f"<p class=note>{e(note)}</p>")
        if png is None:
            parts.append("<p class=note>No configuration has data for this figure.</p>")
        else:
            parts.append(_image_html(png, heading))
    return title, parts


def _outputs_title(outputs: Outputs) -> str:
    counts = [(len(outputs.unlearn), "unlearning", "unlearnings"), (len(outputs.edit), "edit", "edits"),
              (len(outputs.merge), "merge", "merges"), (len(outputs.lm), "lm run", "lm runs")]
    return "Report of " + ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts if n)


def write_runs_report(loaded: Sequence[runs.Run], out: Path, outputs: Outputs | None = None) -> Path:
    """Write the figures into ``out`` and ``out/report.html`` (the summary table, the figures
    embedded, and the run folders; then the sections of ``outputs``, the folders of ``lifelong
    unlearn``, ``edit`` and ``merge``: :mod:`lifelong.runs.sections`), and return the HTML path.
    Incomplete runs are counted in the table and marked in the listing, but left out of the means
    and the figures. ``out`` is created if needed; refused with :class:`UserError`: an ``out``
    that is a file, nothing to report (no run, no output folder that could be read), and the
    runs that :func:`~lifelong.runs.finished.group_runs` refuses."""
    out = Path(out)
    outputs = Outputs() if outputs is None else outputs
    if out.exists() and not out.is_dir():
        raise UserError(f"report output {out} is a file, not a folder; choose another output folder")
    if not loaded and not len(outputs):
        why = f": {outputs.skipped[0][0] / 'metrics.json'} {outputs.skipped[0][1]}" if outputs.skipped else ""
        raise UserError(f"nothing to report{why}")
    configurations = runs.group_runs(loaded) if loaded else []
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create report folder {out}: {exc.strerror or exc}") from None
    title, parts = _runs_parts(configurations, out) if configurations else (_outputs_title(outputs), [])
    parts += sections_html(sections.sections(outputs), out)
    if configurations:
        parts += ["<h2>Runs</h2>", _runs_html(configurations)]
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{e(title)}</h1>", *parts, "</body></html>"]
    path = out / "report.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
