"""Forgetting control and merging with `lifelong.edit` on real MNIST with the MLP (issue 15).

Per seed, three runs of `finetune` through the library (`lifelong.run`, one CPU thread, one epoch,
the published settings): A trains on task 1 of the stream, B and C start from A's model.pt
(`init_from`) and train on task 2 and task 3 only (`train_tasks`). Each task's test set is cut in
two halves by a seeded draw (:func:`lifelong.edit.split_stream`, the commands' ``auto``): the
*validation* half chooses α, β or λ (:mod:`lifelong.edit.select`), the *test* half is reported.

* Forgetting control: for α = 0, 0.1, ..., 1, LiNeS (β = 1 − α) and plain interpolation (β = 0:
  θ_A + α·τ) of B over the base A; task 1 accuracy is the control, task 2 the target. At equal
  control accuracy: plain interpolation's target accuracy read off its own curve (linear between
  its α points) at LiNeS' control accuracy. Selection: the reference's trade-off, the best
  2·target/target_B + control/control_A on validation.
* Merging B and C (base A): task arithmetic (λ from 0.1..1.0), TIES k = 20 (λ from 0.1..1.5), and
  each + LiNeS (α from the L1 rule, β from 0.1..1.0 or 0.1..1.5), the parameter chosen by the mean
  normalised accuracy on tasks 2 and 3 (each divided by its own fine-tuned model's) on validation.

Accuracy is class-IL on Permuted-MNIST (domain-IL: every task has every class) and task-IL on
Split-MNIST (class-IL after fine-tuning on one task predicts only that task's classes).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/merging.py --benchmark permuted-mnist --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import lifelong
import lifelong.edit as edit
from lifelong.edit.run import load_sources
from lifelong.edit.select import ALPHA_GRID as ALPHAS
from lifelong.edit.select import LAM_GRID
from lifelong.evaluate import evaluate

GRID_TA, GRID_TIES = LAM_GRID["task_arithmetic"], LAM_GRID["ties"]


def accuracy(model, state, stream, scenario: int) -> list[float]:
    model.load_state_dict(state)
    return evaluate(model, stream)[scenario]


def train_runs(benchmark: str, seed: int, root: Path) -> dict[str, Path]:
    tasks = 3 if benchmark == "permuted-mnist" else 5  # Split-MNIST's five tasks; tasks 4 and 5 never trained
    common = dict(benchmark=benchmark, method="finetune", num_tasks=tasks, seed=seed, threads=1, epochs=1)
    folders = {name: root / f"{benchmark}-{seed}-{name}" for name in "ABC"}
    lifelong.run(**common, train_tasks="1", out=str(folders["A"]))
    for name, task in (("B", "2"), ("C", "3")):
        lifelong.run(**common, train_tasks=task, init_from=str(folders["A"]), out=str(folders[name]))
    return folders


def at_equal_control(control: list[float], target: list[float], at: float) -> float:
    """The target accuracy of a curve of (control, target) points at control accuracy ``at``."""
    order = np.argsort(control)
    return float(np.interp(at, np.asarray(control)[order], np.asarray(target)[order]))


def forgetting_control(src, val, test, scenario: int) -> dict:
    model = copy.deepcopy(src.runs[0].model)
    ft = edit.state_of(src.runs[0].model)
    base_v, ft_v = accuracy(model, src.base, val, scenario), accuracy(model, ft, val, scenario)
    curves = {}
    for name, beta in (("lines", None), ("plain", 0.0)):
        rows = []
        for alpha in ALPHAS:
            state = edit.lines_edit(src.base, ft, alpha, layers=model, beta=beta)
            v, t = accuracy(model, state, val, scenario), accuracy(model, state, test, scenario)
            score = edit.tradeoff_score(v, [0], [1], base_v, ft_v)  # control task 1, target task 2
            rows.append({"alpha": alpha, "control": t[0], "target": t[1], "score": score})
        curves[name] = rows
    plain_c = [r["control"] for r in curves["plain"]]
    plain_t = [r["target"] for r in curves["plain"]]
    for r in curves["lines"]:
        r["plain_target_at_control"] = at_equal_control(plain_c, plain_t, r["control"])
    base_t = accuracy(model, src.base, test, scenario)
    ft_t = accuracy(model, ft, test, scenario)
    return {"curves": curves, "base": base_t[:2], "finetuned": ft_t[:2]}


def merges(src, val, test, scenario: int) -> dict:
    model = copy.deepcopy(src.runs[0].model)
    nets = [edit.state_of(r.model) for r in src.runs]
    own = [accuracy(model, nets[i], val, scenario) for i in range(2)]

    def score(state) -> float:
        return edit.normalised_score(accuracy(model, state, val, scenario), [[1], [2]], own)

    out = {"base": accuracy(model, src.base, test, scenario),
           "B": accuracy(model, nets[0], test, scenario), "C": accuracy(model, nets[1], test, scenario)}
    for method, grid in (("task_arithmetic", GRID_TA), ("ties", GRID_TIES)):
        for lines in (False, True):
            if lines:
                states = {b: edit.lines_merge(src.base, nets, b, method, 20.0, layers=model) for b in grid}
            else:
                states = {lam: edit.merge(src.base, nets, method, lam, 20.0) for lam in grid}
            best = edit.choose(grid, lambda p: score(states[p]))[0]
            name = method + (" + LiNeS" if lines else "")
            out[name] = {"param": best, "acc": accuracy(model, states[best], test, scenario)}
    return out


def chosen_row(rows: list[dict]) -> dict:
    """The row of the α that :func:`lifelong.edit.choose` picks by the rows' validation scores."""
    return rows[edit.choose(list(range(len(rows))), lambda i: rows[i]["score"])[0]]


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def report(benchmark: str, results: list[dict], seconds: list[float]) -> str:
    return "\n".join(control_table(benchmark, results, seconds) + merge_table(benchmark, results)) + "\n"


def control_table(benchmark: str, results: list[dict], seconds: list[float]) -> list[str]:
    seeds = len(results)
    lines = [f"### {benchmark}: forgetting control (A = task 1, B = task 2; {seeds} seeds, test halves, "
             f"mean ± std; {statistics.mean(seconds):.0f} s a seed)", "",
             "| α | LiNeS control | LiNeS target | plain control | plain target | plain target at LiNeS' control | "
             "LiNeS − plain at equal control |", "|---|---|---|---|---|---|---|"]
    for i, alpha in enumerate(ALPHAS):
        cells = []
        for name in ("lines", "plain"):
            for key in ("control", "target"):
                cells.append(mean_std([r["fc"]["curves"][name][i][key] for r in results]))
        at = [r["fc"]["curves"]["lines"][i]["plain_target_at_control"] for r in results]
        gap = [r["fc"]["curves"]["lines"][i]["target"] - a for r, a in zip(results, at)]
        lines.append(f"| {alpha} | " + " | ".join(cells) + f" | {mean_std(at)} | {mean_std(gap)} |")
    base = [r["fc"]["base"] for r in results]
    ft = [r["fc"]["finetuned"] for r in results]
    lines += ["", f"Base A: task 1 {mean_std([b[0] for b in base])}, task 2 {mean_std([b[1] for b in base])}; "
              f"fine-tuned B: task 1 {mean_std([f[0] for f in ft])}, task 2 {mean_std([f[1] for f in ft])}.", ""]
    lines += ["Chosen on validation by the reference's trade-off (2·target/target_B + control/control_A):", "",
              "| edit | α per seed | control | target |", "|---|---|---|---|"]
    for name in ("lines", "plain"):
        picks = [chosen_row(r["fc"]["curves"][name]) for r in results]
        lines.append(f"| {'LiNeS' if name == 'lines' else 'plain interpolation'} | "
                     f"{', '.join(str(p['alpha']) for p in picks)} | {mean_std([p['control'] for p in picks])} | "
                     f"{mean_std([p['target'] for p in picks])} |")
    return lines


def merge_table(benchmark: str, results: list[dict]) -> list[str]:
    seeds = len(results)
    lines = ["", f"### {benchmark}: merging B (task 2) and C (task 3), base A ({seeds} seeds, test halves)", "",
              "| model | parameter per seed | task 1 | task 2 | task 3 | mean of 2, 3 |", "|---|---|---|---|---|---|"]
    for name in ("base", "B", "C"):
        accs = [r["merge"][name] for r in results]
        lines.append(f"| {name} | - | " + " | ".join(mean_std([a[t] for a in accs]) for t in range(3))
                     + f" | {mean_std([(a[1] + a[2]) / 2 for a in accs])} |")
    for name in ("task_arithmetic", "task_arithmetic + LiNeS", "ties", "ties + LiNeS"):
        rows = [r["merge"][name] for r in results]
        what = "β" if "LiNeS" in name else "λ"
        lines.append(f"| {name} | {what} {', '.join(str(x['param']) for x in rows)} | "
                     + " | ".join(mean_std([x["acc"][t] for x in rows]) for t in range(3))
                     + f" | {mean_std([(x['acc'][1] + x['acc'][2]) / 2 for x in rows])} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="permuted-mnist", choices=["permuted-mnist", "split-mnist"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", default=None, help="folder for the run folders (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scenario = 0 if args.benchmark == "permuted-mnist" else 1
    results, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.runs or tmp)
        for seed in args.seeds:
            started = time.perf_counter()
            folders = train_runs(args.benchmark, seed, root)
            src = load_sources(folders["A"], [folders["B"], folders["C"]], device="cpu")
            val, test = edit.split_stream(src.stream, seed, 0.5)
            single = load_sources(folders["A"], [folders["B"]], device="cpu")
            results.append({"fc": forgetting_control(single, val, test, scenario),
                            "merge": merges(src, val, test, scenario)})
            seconds.append(time.perf_counter() - started)
            print(f"seed {seed}: {seconds[-1]:.1f} s", flush=True)
    print(report(args.benchmark, results, seconds))


if __name__ == "__main__":
    main()
