"""Figures of finished runs: what is plotted (pure functions on accuracy matrices) and the plots.

Runs are read and grouped by :mod:`lifelong.runs.finished`. For one configuration and one scenario
(class-IL or task-IL) the data functions take the accuracy matrices of its seeds, ``R[i][j]``
(percent; row ``i`` after training task ``i``, column ``j`` task ``j``), and return plain lists of
floats: a statistic per seed, then its mean and sample standard deviation over the seeds (the
std is 0.0 for a single seed; ``"seeds"`` says how many there were). A one-row matrix (joint
training) has no sequence: the functions that need one return ``None`` for it.

The plot functions take that data and write a PNG with matplotlib's Agg renderer; matplotlib is
imported inside them, so importing this module stays cheap.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from lifelong.metrics import mean_std
from lifelong.runs.finished import Configuration, Matrix
from lifelong.runs.metrics_file import METRICS

Stats = dict[str, Any]

SCENARIOS = ("class_il", "task_il")
SCENARIO_NAMES = {"class_il": "class-IL", "task_il": "task-IL"}


# ---------------------------------------------------------------------------------------------
# data: pure functions of the matrices of one configuration's seeds

def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    stats = mean_std(values)
    if stats is None:
        raise ValueError("no values to average")
    return stats


def _per_seed(values_per_seed: Sequence[Sequence[float]]) -> Stats:
    """Element-wise mean and std over seeds of equally long lists."""
    if len({len(v) for v in values_per_seed}) != 1:
        raise ValueError("every seed must give the same number of values")
    columns = [_mean_std(column) for column in zip(*values_per_seed)]
    return {"mean": [m for m, _ in columns], "std": [s for _, s in columns], "seeds": len(values_per_seed)}


def _check(matrices: Sequence[Matrix]) -> None:
    if not matrices:
        raise ValueError("need the accuracy matrix of at least one seed")
    shapes = {(len(R), *(len(row) for row in R)) for R in matrices}
    if len(shapes) != 1 or not matrices[0] or len(set(next(iter(shapes))[1:])) != 1:
        raise ValueError("the accuracy matrices must be non-empty, rectangular and of one shape")


def _sequential(R: Matrix) -> bool:
    return len(R) == len(R[0]) and len(R) > 1


def matrix_mean_std(matrices: Sequence[Matrix]) -> Stats:
    """Element-wise ``mean[i][j]`` and ``std[i][j]`` of ``R[i][j]`` over the seeds."""
    _check(matrices)
    rows = [_per_seed([R[i] for R in matrices]) for i in range(len(matrices[0]))]
    return {"mean": [r["mean"] for r in rows], "std": [r["std"] for r in rows], "seeds": len(matrices)}


def average_accuracy_after_each_task(matrices: Sequence[Matrix]) -> Stats:
    """``A_i = 1/(i+1) * sum_{j<=i} R[i][j]``, the mean accuracy on the tasks seen so far after
    training task ``i``, per seed, then mean and std over seeds (one value per row). A one-row
    matrix (joint training, all tasks at once) gives one value: the mean of its row."""
    _check(matrices)
    if len(matrices[0]) == 1:
        return _per_seed([[statistics.fmean(R[0])] for R in matrices])
    if not _sequential(matrices[0]):
        raise ValueError("need one row per task, or a single row")
    return _per_seed([[statistics.fmean(R[i][: i + 1]) for i in range(len(R))] for R in matrices])


def task_accuracy_curves(matrices: Sequence[Matrix]) -> Stats | None:
    """For each task ``j``, its accuracy ``R[i][j]`` after training task ``i`` for ``i >= j``
    (from when it was learnt to the end): ``mean[j]`` and ``std[j]`` have ``T - j`` values.
    ``None`` for a one-row matrix."""
    _check(matrices)
    if not _sequential(matrices[0]):
        return None
    T = len(matrices[0])
    curves = [_per_seed([[R[i][j] for i in range(j, T)] for R in matrices]) for j in range(T)]
    return {"mean": [c["mean"] for c in curves], "std": [c["std"] for c in curves], "seeds": len(matrices)}


def forgetting_per_task(matrices: Sequence[Matrix]) -> Stats | None:
    """For each task ``j < T-1``: ``f_j = max_{j<=l<T-1} R[l][j] - R[T-1][j]``, how far it fell
    from its best accuracy after being learnt and before the last task (the terms that
    :func:`lifelong.metrics.forgetting` averages), per seed, then mean and std over seeds.
    ``None`` for a one-row matrix."""
    _check(matrices)
    if not _sequential(matrices[0]):
        return None
    T = len(matrices[0])
    return _per_seed([[max(R[l][j] for l in range(j, T - 1)) - R[T - 1][j] for j in range(T - 1)]
                      for R in matrices])


SUMMARY_METRICS = METRICS


def anytime_accuracy_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> Stats | None:
    """The accuracy on the classes seen so far over the examples seen (the anytime curve of
    :mod:`lifelong.anytime`), one ``(examples seen, accuracy)`` list per seed: mean and std over
    the seeds at the points every seed has (``"x"``); ``None`` when a seed has no point or the
    seeds share none."""
    if not curves or any(not c for c in curves):
        return None
    shared = sorted(set.intersection(*(set(x for x, _ in c) for c in curves)))
    if not shared:
        return None
    by_seed = [dict(c) for c in curves]
    return {"x": shared, **_per_seed([[points[x] for x in shared] for points in by_seed])}


ONLINE_SUMMARY = ("a_auc", "a_last", "a_avg", "f_last")  # metrics.json's ``online`` block in the summary


def _summary_stat(values: list[float | None]) -> dict[str, float] | None:
    """Mean and std of every seed's value; ``None`` when a seed has none, or there are no seeds."""
    if not values or any(v is None for v in values):
        return None
    mean, std = _mean_std(values)  # type: ignore[arg-type]
    return {"mean": mean, "std": std}


def summary_table(configurations: Sequence[Configuration]) -> list[dict[str, Any]]:
    """One row per configuration: ``label``, ``seeds`` (the complete runs' seeds, a list),
    ``runs`` (how many runs, complete or not), ``wall_seconds`` and, under ``class_il`` and
    ``task_il``, each of :data:`SUMMARY_METRICS` as ``{"mean", "std"}`` over the complete runs'
    ``metrics.json`` values (``None`` where a seed has none, e.g. forgetting of joint training,
    or no run is complete); under ``online``, :data:`ONLINE_SUMMARY` when a complete run has
    anytime evaluation (else ``online`` is ``None``). Incomplete runs (diverged, interrupted) are
    left out of the means."""
    rows = []
    for conf in configurations:
        done = conf.complete_runs
        row: dict[str, Any] = {"label": conf.label, "seeds": [r.seed for r in done], "runs": len(conf.runs),
                               "wall_seconds": _summary_stat([r.metrics["wall_seconds"] for r in done])}
        for scenario in SCENARIOS:
            row[scenario] = {name: _summary_stat([r.metrics[scenario].get(name) for r in done])
                             for name in SUMMARY_METRICS}
        online = [r.metrics.get("online") or {} for r in done]
        row["online"] = ({name: _summary_stat([o.get(name) for o in online]) for name in ONLINE_SUMMARY}
                         if any(online) else None)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# plots: each takes ``{label: data}`` (in legend order) and writes one PNG

def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    path = Path(path)
    fig.savefig(path, format="png", bbox_inches="tight", pad_inches=0.15)
    return path


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def label_colors(labels: Sequence[str]) -> dict[str, tuple]:
    """A colour per configuration label, so that one configuration has one colour in every figure."""
    return dict(zip(labels, _colors(len(labels))))


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols


def _task_ticks(ax, T: int, axis: str = "x") -> None:
    step = 1 if T <= 10 else (2 if T <= 20 else 5)
    ticks = list(range(0, T, step))
    labels = [str(t + 1) for t in ticks]
    if axis == "x":
        ax.set_xticks(ticks, labels)
    else:
        ax.set_yticks(ticks, labels)


def plot_accuracy_matrices(data: dict[str, Stats], title: str, path: Path) -> Path:
    """Heatmaps of the mean accuracy matrices (one panel per configuration), each cell annotated
    with its mean (and ± std for several seeds) when there are at most 10 tasks; cells above the
    diagonal (tasks not yet trained) are greyed out. A one-row matrix is drawn as one row."""
    import numpy as np

    if not data:
        raise ValueError("nothing to plot")
    T = len(next(iter(data.values()))["mean"][0])
    rows, cols = _grid(len(data))
    cell = 0.62 if T <= 6 else (0.5 if T <= 10 else 0.28)
    labels = list(data)
    # each grid row is as tall as its tallest matrix (a joint run's single row is a strip)
    heights = [max(len(data[label]["mean"]) for label in labels[r * cols:(r + 1) * cols]) for r in range(rows)]
    panel = max(2.8, cell * T + 1.0)
    fig = _new_figure(cols * panel + 0.8, sum(cell * h + 1.3 for h in heights) + 0.5)
    fig.suptitle(title, fontsize=12)
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw={"height_ratios": [h + 1.3 / cell for h in heights]})
    image = None
    for ax, (label, stats) in zip(axes.flat, data.items()):
        mean = np.array(stats["mean"], dtype=float)
        std = np.array(stats["std"], dtype=float)
        n_rows = mean.shape[0]
        upper = np.triu(np.ones_like(mean, dtype=bool), k=1) if n_rows == T else np.zeros_like(mean, dtype=bool)
        image = ax.imshow(np.ma.masked_array(mean, upper), cmap="viridis", vmin=0, vmax=100, aspect="equal")
        ax.set_facecolor("#e6e6e6")
        ax.set_title(label if stats["seeds"] == 1 else f"{label}, {stats['seeds']} seeds", fontsize=9)
        _task_ticks(ax, T, "x")
        ax.set_xlabel("accuracy on task", fontsize=8)
        if n_rows == T:
            _task_ticks(ax, T, "y")
            ax.set_ylabel("after training task", fontsize=8)
        else:
            ax.set_yticks([0], ["all (joint)"])
        ax.tick_params(labelsize=7, length=0)
        if T <= 10:
            _annotate_cells(ax, mean, std, upper, stats["seeds"] > 1 and T <= 6, 7 if T <= 6 else 6)
    for ax in list(axes.flat)[len(data):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, shrink=min(0.8, 1.6 / rows), label="accuracy (%)", aspect=20)
    return _save(fig, path)


def _annotate_cells(ax, mean, std, hidden, show_std: bool, size: int) -> None:
    """Each visible cell's mean (and ± std) as text on a heatmap."""
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            if hidden[i, j]:
                continue
            text = f"{mean[i, j]:.1f}" + (f"\n±{std[i, j]:.1f}" if show_std else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=size,
                    color="black" if mean[i, j] >= 60 else "white", linespacing=1.1)


def accuracy_limits(values: Sequence[float], pad: float = 3.0) -> tuple[float, float]:
    """y-axis limits for accuracies: the data's range with some room, on multiples of 5, within
    [0, 101] (a plot of accuracies between 95 and 99 no longer shows 0-100)."""
    finite = [v for v in values if v == v]
    if not finite:
        return 0.0, 101.0
    low = max(0.0, 5.0 * math.floor((min(finite) - pad) / 5.0))
    high = min(101.0, 5.0 * math.ceil((max(finite) + pad) / 5.0))
    return (low, high) if high > low else (max(0.0, low - 5.0), min(101.0, high + 5.0))


def plot_average_accuracy(data: dict[str, Stats], title: str, path: Path, *,
                          colors: dict[str, tuple] | None = None) -> Path:
    """Average accuracy on the tasks seen so far after each task, one line per configuration,
    with a ± std band for several seeds; a configuration with a single value (joint training)
    is a dashed horizontal line. ``colors`` maps labels to colours (default: one per label)."""
    if not data:
        raise ValueError("nothing to plot")
    T = max(len(s["mean"]) for s in data.values())
    fig = _new_figure(6.4, 4.2)
    ax = fig.subplots()
    colors = colors or label_colors(list(data))
    for label, stats in data.items():
        color = colors[label]
        mean, std = stats["mean"], stats["std"]
        if len(mean) == 1 and T > 1:
            ax.axhline(mean[0], color=color, linestyle="--", linewidth=1.5, label=_series_name(label, stats))
            if stats["seeds"] > 1:
                ax.axhspan(mean[0] - std[0], mean[0] + std[0], color=color, alpha=0.12, linewidth=0)
            continue
        _mean_and_band(ax, list(range(len(mean))), mean, std, stats["seeds"], color, _series_name(label, stats),
                       marker="o", markersize=4)
    _task_ticks(ax, T)
    ax.set_xlim(-0.2, T - 0.8)
    _finish_axes(ax, data, title, "after training task", "average accuracy on tasks seen (%)")
    return _save(fig, path)


def _series_name(label: str, stats: Stats) -> str:
    """A configuration's legend entry: its label, and how many seeds when more than one."""
    return label if stats["seeds"] == 1 else f"{label} (n={stats['seeds']})"


def _mean_and_band(ax, xs: list, mean: list, std: list, seeds: int, color: tuple, label: str, *,
                   band_alpha: float = 0.18, **style: Any) -> None:
    """The mean over ``seeds`` seeds as a line, and with several seeds a band of ± one standard
    deviation (capped at 100%)."""
    ax.plot(xs, mean, color=color, label=label, **style)
    if seeds > 1:
        ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [min(100.0, m + s) for m, s in zip(mean, std)],
                        color=color, alpha=band_alpha, linewidth=0)


def _finish_axes(ax, data: dict[str, Stats], title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels, accuracy limits that hold every mean ± std, grid and legend."""
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(*accuracy_limits([m + sign * sd for s in data.values() for m, sd in zip(s["mean"], s["std"])
                                  for sign in (-1, 1)]))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)


def plot_task_accuracy_curves(data: dict[str, Stats], title: str, path: Path) -> Path:
    """One panel per configuration; in each, one line per task ``j``: its accuracy after
    training task ``i >= j`` (± std band for several seeds). Tasks share colours across panels."""
    if not data:
        raise ValueError("nothing to plot")
    T = len(next(iter(data.values()))["mean"])
    rows, cols = _grid(len(data))
    fig = _new_figure(cols * 3.6 + 1.2, rows * 2.9 + 0.4)
    fig.suptitle(title, fontsize=12)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    colors = _colors(T)
    limits = accuracy_limits([m + sign * sd for s in data.values() for mean, std in zip(s["mean"], s["std"])
                              for m, sd in zip(mean, std) for sign in (-1, 1)])
    for ax, (label, stats) in zip(axes.flat, data.items()):
        for j, (mean, std) in enumerate(zip(stats["mean"], stats["std"])):
            _mean_and_band(ax, list(range(j, T)), mean, std, stats["seeds"], colors[j], f"task {j + 1}",
                           band_alpha=0.15, marker="o", markersize=3)
        ax.set_title(label if stats["seeds"] == 1 else f"{label}, {stats['seeds']} seeds", fontsize=9)
        _task_ticks(ax, T)
        ax.set_xlim(-0.2, T - 0.8)
        ax.set_ylim(*limits)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for k, ax in enumerate(axes.flat):
        if k + cols >= len(data):  # nothing drawn below it
            ax.set_xlabel("after training task", fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)", fontsize=9)
    for ax in list(axes.flat)[len(data):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, frameon=False,
               ncols=1 if T <= 12 else 2)
    return _save(fig, path)


def plot_forgetting(data: dict[str, Stats], title: str, path: Path, *,
                    colors: dict[str, tuple] | None = None) -> Path:
    """Forgetting of each task but the last, as grouped bars (one bar per configuration, ± std
    error bars for several seeds). ``colors`` maps labels to colours (default: one per label)."""
    if not data:
        raise ValueError("nothing to plot")
    n_tasks = len(next(iter(data.values()))["mean"])
    n = len(data)
    width = 0.8 / n
    fig = _new_figure(min(14.0, max(6.0, 0.35 * n * n_tasks + 2.0)), 4.0)
    ax = fig.subplots()
    low = high = 0.0
    colors = colors or label_colors(list(data))
    for k, (label, stats) in enumerate(data.items()):
        color = colors[label]
        xs = [j - 0.4 + width * (k + 0.5) for j in range(n_tasks)]
        err = stats["std"] if stats["seeds"] > 1 else None
        ax.bar(xs, stats["mean"], width=width, color=color, label=_series_name(label, stats), yerr=err,
               error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.25"})
        stds = stats["std"] if err else [0.0] * n_tasks
        low = min(low, *(m - s for m, s in zip(stats["mean"], stds)))
        high = max(high, *(m + s for m, s in zip(stats["mean"], stds)))
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("task")
    ax.set_ylabel("forgetting (points)")
    _task_ticks(ax, n_tasks)
    ax.set_xlim(-0.5, n_tasks - 0.5)
    pad = 0.06 * max(1.0, high - low)
    ax.set_ylim(low - pad if low < 0 else 0.0, high + pad)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return _save(fig, path)


def _accuracy_lines(data: dict[str, Stats], title: str, path: Path, colors: dict[str, tuple] | None,
                    xlabel: str, ylabel: str, **style: Any) -> Path:
    """One accuracy line per configuration over ``stats["x"]`` (± std band for several seeds)."""
    if not data:
        raise ValueError("nothing to plot")
    fig = _new_figure(6.4, 4.2)
    ax = fig.subplots()
    colors = colors or label_colors(list(data))
    for label, stats in data.items():
        _mean_and_band(ax, stats["x"], stats["mean"], stats["std"], stats["seeds"], colors[label],
                       _series_name(label, stats), **style)
    _finish_axes(ax, data, title, xlabel, ylabel)
    return _save(fig, path)


def plot_anytime_accuracy(data: dict[str, Stats], title: str, path: Path, *,
                          colors: dict[str, tuple] | None = None) -> Path:
    """The accuracy on the classes seen so far over the examples seen, one line per configuration
    (:func:`anytime_accuracy_curve`), with a ± std band for several seeds."""
    return _accuracy_lines(data, title, path, colors, "training examples seen",
                           "accuracy on the classes seen so far (%)", linewidth=1.4)


def plot_tradeoff(data: dict[str, Stats], title: str, path: Path, *, colors: dict[str, tuple] | None = None) -> Path:
    """The trade-off curves of weight edits (:mod:`lifelong.runs.sections`): target accuracy
    against control accuracy, one point per α (labelled), one curve per kind of edit, with ± std
    error bars for several seeds."""
    if not data:
        raise ValueError("nothing to plot")
    fig = _new_figure(6.4, 4.6)
    ax = fig.subplots()
    colors = colors or label_colors(list(data))
    for label, stats in data.items():
        several = stats["seeds"] > 1
        ax.errorbar(stats["control"], stats["target"], xerr=stats["control_std"] if several else None,
                    yerr=stats["target_std"] if several else None, color=colors[label], marker="o", markersize=4,
                    linewidth=1.4, elinewidth=0.8, capsize=2, label=_series_name(label, stats))
        for alpha, x, y in zip(stats["alpha"], stats["control"], stats["target"]):
            ax.annotate(f"α={alpha:g}", (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6,
                        color=colors[label])
    spread = {axis: [m + sign * sd for s in data.values() for m, sd in zip(s[axis], s[f"{axis}_std"])
                     for sign in (-1, 1)] for axis in ("control", "target")}
    ax.set_xlim(*accuracy_limits(spread["control"]))
    ax.set_ylim(*accuracy_limits(spread["target"]))
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("control accuracy (%): the tasks the base learnt")
    ax.set_ylabel("target accuracy (%): the fine-tuned tasks")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return _save(fig, path)


def plot_merge_scale(data: dict[str, Stats], title: str, path: Path, *,
                     colors: dict[str, tuple] | None = None) -> Path:
    """The mean accuracy on the merged tasks over the merge's scale (λ, or β with LiNeS), one
    line per kind of merge, with a ± std band for several seeds."""
    return _accuracy_lines(data, title, path, colors, "scale: λ (β with LiNeS)",
                           "mean accuracy on the merged tasks (%)", marker="o", markersize=4)


def plot_basis_size(data: dict[str, Stats], title: str, path: Path, *,
                    colors: dict[str, tuple] | None = None) -> Path:
    """RMM's mean accuracy over the adapters' tasks against the basis size k, one line per
    configuration (± std band for several seeds), with horizontal lines of the same colour for
    every adapter kept (dashed) and the plain merge of ΔW (dotted) where the data holds them
    (``"kept"``, ``"plain"``: ``(mean, std)`` or ``None``; :func:`lifelong.runs.sections.rmm_section`),
    listed in the legend under their configuration."""
    if not data:
        raise ValueError("nothing to plot")
    fig = _new_figure(7.2, 4.2)
    ax = fig.subplots()
    colors = colors or label_colors(list(data))
    levels = []
    for label, stats in data.items():
        color = colors[label]
        _mean_and_band(ax, stats["x"], stats["mean"], stats["std"], stats["seeds"], color,
                       _series_name(label, stats), marker="o", markersize=4)
        for key, style, name in (("kept", "--", "every adapter kept"), ("plain", ":", stats.get("plain_label"))):
            if stats.get(key) is not None:
                ax.axhline(stats[key][0], color=color, linestyle=style, linewidth=1.2, label=f"  {name}")
                levels.append(stats[key][0])
    ax.set_xticks(sorted({x for stats in data.values() for x in stats["x"]}))
    _finish_axes(ax, data, title, "basis size k", "mean accuracy on the adapters' tasks (%)")
    ax.set_ylim(*accuracy_limits([*levels, *(m + sign * sd for s in data.values() for m, sd in zip(s["mean"], s["std"])
                                             for sign in (-1, 1))]))
    return _save(fig, path)


def plot_loss_curves(data: dict[str, Stats], title: str, path: Path, *,
                     colors: dict[str, tuple] | None = None) -> Path:
    """A corpus's held-out loss (nats per token) over the training tokens, one line per
    configuration (± std band for several seeds; :func:`lifelong.runs.sections.lm_section`)."""
    if not data:
        raise ValueError("nothing to plot")
    fig = _new_figure(7.2, 4.0 + 0.17 * len(data))  # the legend below the axes: long labels
    ax = fig.subplots()
    colors = colors or label_colors(list(data))
    for label, stats in data.items():
        xs, mean, std = stats["x"], stats["mean"], stats["std"]
        ax.plot(xs, mean, color=colors[label], label=_series_name(label, stats), marker="o", markersize=3)
        if stats["seeds"] > 1:
            ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=colors[label], alpha=0.18, linewidth=0)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("held-out loss (nats per token)")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=7, frameon=False)
    return _save(fig, path)
