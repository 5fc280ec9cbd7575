"""A method with and without refresh learning over several seeds: mean ± std of each, and the
paired difference (same seed, same data order, same initialisation) with a 95% confidence
interval from Student's t distribution. No printing here; the CLI prints :func:`format_comparison`."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from lifelong.config import RunConfig, default_folder, method_name
from lifelong.errors import ConfigError
from lifelong.metrics import count_complete, is_complete, mean_std
from lifelong.runs.folder import check_runs_folder
from lifelong.runs.parallel import outcome, run_all, stopped, tally
from lifelong.runs.session import check_run, refresh_settings

VARIANTS = ("base", "refresh")  # without and with refresh

# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


MAX_SEEDS = 1000


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> 0..4; ``"0,3,7"`` -> those; mixtures like ``"0-2,5"`` too. At most
    :data:`MAX_SEEDS`, each in ``0..2^63-1`` as ``--seed``'s (a range is counted before it is
    expanded: ``0-99999999999`` is refused at once)."""
    seeds: list[int] = []
    count = 0
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                if b < a:
                    raise ValueError
                bounds = (a, b)
            else:
                bounds = (int(part), int(part))
            count += bounds[1] - bounds[0] + 1
            if count > MAX_SEEDS:
                raise ConfigError(f"at most {MAX_SEEDS} seeds, got {count if count < 10**6 else 'more'} from {text!r}")
            if bounds[0] < 0 or bounds[1] >= 2**63:
                raise ConfigError(f"seeds must lie in 0..2^63-1, as --seed's, got {text!r}")
            seeds.extend(range(bounds[0], bounds[1] + 1))
    except ValueError:
        raise ConfigError(f"seeds must look like 0-4 or 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct non-negative integers, got {text!r}")
    return seeds


def t95(n: int) -> float:
    """Half-width factor of a two-sided 95% interval for the mean of ``n`` values."""
    df = n - 1
    return _T95[df - 1] if df <= len(_T95) else 1.96


def refresh_tag(refresh: str | dict) -> str:
    """A folder-name tag for a refresh setting: its form and a short hash of its options."""
    options = {"form": refresh} if isinstance(refresh, str) else dict(refresh)
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    return f"refresh-{options.get('form', 'paper')}-{digest}"


def run_comparison(config: RunConfig, seeds: list[int], out: Path, *, jobs: int = 1,
                   report: Callable[[str, int, dict], None] | None = None) -> dict[str, Any]:
    """Run ``config`` without and with its ``refresh`` setting for every seed, in
    ``out/base-seed<k>`` and ``out/refresh-<form>-<hash>-seed<k>``. Runs already complete there
    are not repeated, so comparisons of several refresh settings in one folder share the runs
    without refresh; a folder holding a run of other settings refuses the comparison before
    any run starts (:func:`lifelong.runs.reuse.check_runs`)."""
    jobs_list = comparison_runs(config, seeds, out)
    refresh = _refresh_of(next(cfg for name, _, cfg in jobs_list if name == "refresh"))

    def finished(i: int, doc: dict) -> None:
        if report:
            report(jobs_list[i][0], jobs_list[i][1], doc)

    results = run_all([cfg for _, _, cfg in jobs_list], jobs, finished)  # every folder checked first
    out.mkdir(parents=True, exist_ok=True)
    docs = {(name, seed): doc for (name, seed, _), doc in zip(jobs_list, results)}
    summary = summarize(docs, seeds)
    summary["stopped"], summary["runs"] = stopped(results), tally(results)
    ran = [doc for doc in results if doc is not None]
    summary["refresh"] = refresh
    summary["benchmark"] = config.benchmark
    summary["method"] = ran[0]["method"] if ran else method_name(config.method)
    tag = refresh_tag(config.refresh or "paper")
    (out / f"compare-{tag}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / f"compare-{tag}.md").write_text(format_comparison(summary) + "\n")
    return summary


def _refresh_of(config: RunConfig) -> dict[str, Any] | None:
    """The resolved refresh settings of the comparison's runs with refresh (every default filled
    in, as those runs record them), known before any of them has started or finished."""
    _, recipe, _, _ = check_run(config)
    return refresh_settings(recipe)


def plan_comparison(config: RunConfig, seeds: list[int], out: str | None = None
                    ) -> tuple[Path, list[tuple[str, int, RunConfig]]]:
    """The folder of a comparison (``out``, default ``runs/compare-<benchmark>-<method>-<time>``)
    and its runs (:func:`comparison_runs`), the two variants checked as a run is (the user's
    code, the recipe with and without refresh, ...) before any run starts."""
    root = Path(out) if out else default_folder("compare", config.benchmark, method_name(config.method))
    check_runs_folder(root)
    runs = comparison_runs(replace(config, out=None), seeds, root)
    for _, _, variant in runs[:2]:  # without and with refresh
        check_run(variant)
    return root, runs


def comparison_runs(config: RunConfig, seeds: list[int], out: Path) -> list[tuple[str, int, RunConfig]]:
    """The runs of a comparison, ``(variant, seed, configuration)``: without refresh in
    ``out/base-seed<k>``, with it in ``out/refresh-<form>-<hash>-seed<k>``."""
    refresh = config.refresh or "paper"
    variants = {"base": replace(config, refresh=None), "refresh": replace(config, refresh=refresh)}
    folders = {"base": "base", "refresh": refresh_tag(refresh)}
    return [(name, seed, replace(cfg, seed=seed, out=str(out / f"{folders[name]}-seed{seed}")))
            for seed in seeds for name, cfg in variants.items()]


def _stats(values: list[float]) -> dict[str, float | None]:
    """Mean, std and the half-width of the 95% interval (``None`` where there are too few values)."""
    n = len(values)
    stats = mean_std(values)
    if stats is None:
        return {"mean": None, "std": None, "ci95": None}
    mean, std = stats
    return {"mean": mean, "std": std, "ci95": t95(n) * std / math.sqrt(n) if n > 1 else None}


def summarize(docs: dict[tuple[str, int], dict | None], seeds: list[int]) -> dict[str, Any]:
    """Per scenario: each variant's mean, std and values, and the paired difference, over the
    seeds whose two runs both completed (``complete_seeds``; :func:`lifelong.metrics.is_complete`).
    The other seeds are listed in ``left_out`` with what happened to each run (``None``: not started)."""
    used = [s for s in seeds if all(is_complete(docs.get((v, s))) for v in VARIANTS)]
    out: dict[str, Any] = {
        "seeds": seeds, "complete_seeds": used, "complete": len(used) == len(seeds),
        "left_out": [{"seed": s, **{v: outcome(docs.get((v, s))) for v in VARIANTS}} for s in seeds if s not in used]}
    for scenario in ("class_il", "task_il"):
        values = {v: [docs[(v, s)][scenario]["average_accuracy"] for s in used] for v in VARIANTS}
        diffs = [r - b for b, r in zip(values["base"], values["refresh"])]
        out[scenario] = {
            "base": {**_stats(values["base"]), "values": values["base"]},
            "refresh": {**_stats(values["refresh"]), "values": values["refresh"]},
            "difference": {**_stats(diffs), "values": diffs, "refresh_better": sum(d > 0 for d in diffs)},
        }
    return out


def format_comparison(summary: dict[str, Any]) -> str:
    """The comparison's table: means over the seeds whose two runs completed, how many of all
    they are, and the seeds left out and why."""
    seeds = summary["seeds"]
    used = summary.get("complete_seeds", seeds)
    refresh = summary.get("refresh") or {}
    lines = [f"{summary.get('benchmark', '')} | {summary.get('method', '')} | refresh {refresh.get('form', '')} "
             f"(gamma {refresh.get('gamma')}, steps {refresh.get('steps')}, every {refresh.get('every')}) | "
             f"{len(seeds)} seeds, {count_complete(len(used), len(seeds))} (both runs)",
             f"{'average accuracy (%)':<22}{'without':>16}{'with refresh':>16}{'difference (paired)':>30}"]
    for scenario, label in (("class_il", "class-IL"), ("task_il", "task-IL")):
        s = summary[scenario]
        d = s["difference"]
        if d["mean"] is None:
            lines.append(f"{label:<22}{'-':>16}{'-':>16}{'-':>30}")
            continue
        ci = "" if d["ci95"] is None else f", 95% CI ±{d['ci95']:.2f}"
        lines.append(f"{label:<22}{s['base']['mean']:>9.2f} ± {s['base']['std']:<4.2f}"
                     f"{s['refresh']['mean']:>9.2f} ± {s['refresh']['std']:<4.2f}"
                     f"{d['mean']:>+12.2f} ± {d['std']:.2f}{ci} ({d['refresh_better']}/{len(d['values'])} better)")
    for left in summary.get("left_out", []):
        lines.append(f"seed {left['seed']} left out: " + "; ".join(
            f"{v} {left[v]}" for v in VARIANTS if left[v] != "complete"))
    return "\n".join(lines)
