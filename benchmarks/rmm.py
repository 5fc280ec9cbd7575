"""LoRA adapters and RMM on real MNIST with the MLP (issue 15).

Per seed, one run of the `lora` preset through the library (`lifelong.run`, one CPU thread, one
epoch, library defaults: SGD lr 0.1, batch 10, rank 8, α = 8, adapters on the three linear
layers of a frozen, freshly initialised MLP), one adapter per task; then `lifelong.edit.rmm_runs`
on its adapters: every basis size k = 1..n, with a basis per position of the factors (the review's
reading) and per layer (the other), each task through its rebuilt adapter, against the
plain merges of the same adapters (task arithmetic on ΔW and on A, B separately, with λ = 1/n and
λ = 1) and against keeping every adapter. Reported: the mean over tasks of each task's accuracy
(Split-MNIST: task-IL and class-IL; Permuted-MNIST: class-IL, which is task-IL there), mean ± std
over seeds, and RMM's mean relative reconstruction error of ΔW and of the factors.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/rmm.py --benchmark split-mnist --seeds 0 1 2
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/rmm.py --benchmark permuted-mnist --num-tasks 5 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lifelong
import lifelong.edit as edit


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def cell(values: list[float], digits: int = 1) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def one_seed(benchmark: str, num_tasks: int | None, seed: int, root: Path) -> dict[str, dict]:
    """``{row: {"task_il": mean, "class_il": mean, ...}}`` of one seed."""
    run = root / f"{benchmark}-{seed}-lora"
    extra = {"num_tasks": num_tasks} if num_tasks else {}
    lifelong.run(benchmark=benchmark, method="lora", seed=seed, threads=1, epochs=1, out=str(run), **extra)
    docs = {lam: edit.rmm_runs([run], 1, lam) for lam in (None, 1.0)}
    doc = docs[None]
    rows: dict[str, dict] = {}

    def add(name, acc, **more):
        rows[name] = {"task_il": mean(acc["task_il"]), "class_il": mean(acc["class_il"]),
                      "per_task": {s: list(acc[s]) for s in ("task_il", "class_il")}, **more}

    add("base (no adapter)", doc["before"]["base"])
    add("every adapter kept", doc["kept"])
    for lam, d in docs.items():
        tag = "λ = 1/n" if lam is None else "λ = 1"
        add(f"plain merge of ΔW, {tag}", d["plain"]["delta"])
        add(f"plain merge of A and B, {tag}", d["plain"]["factors"])
    full = sum(a["A"].numel() + a["B"].numel() for a in _adapters(run).values())
    per_layer = edit.rmm_runs([run], 1, per="layer")
    for tag, d in (("a basis per position", doc), ("a basis per layer", per_layer)):
        for entry in d["per_basis"]:
            err = entry["reconstruction_error"]
            add(f"RMM ({tag}), basis {entry['basis']}", entry["accuracy"], delta_err=err["delta_mean"],
                factors_err=err["factors_mean"], stored=entry["stored_numbers"] / (full * d["params"]["num_adapters"]))
    return rows


def _adapters(run: Path) -> dict:
    import torch

    return next(iter(torch.load(run / "adapters.pt", weights_only=True)["tasks"].values()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="split-mnist")
    parser.add_argument("--num-tasks", type=int, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        per_seed = [one_seed(args.benchmark, args.num_tasks, s, Path(tmp)) for s in args.seeds]
    seconds = (time.perf_counter() - started) / len(args.seeds)
    scenarios = ("task_il", "class_il") if args.benchmark == "split-mnist" else ("class_il",)
    heads = " | ".join(("task-IL" if s == "task_il" else "class-IL") + " (mean over tasks)" for s in scenarios)
    print(f"#### {args.benchmark}: LoRA adapters and RMM ({len(args.seeds)} seeds, mean ± std; {seconds:.0f} s a seed)\n")
    print(f"| model | {heads} | ΔW rel. error | factor rel. error | stored (share of all adapters) |")
    print("|---|" + "---|" * (len(scenarios) + 3))
    for name in per_seed[0]:
        values = [r[name] for r in per_seed]
        accs = " | ".join(cell([v[s] for v in values]) for s in scenarios)
        if "delta_err" in values[0]:
            extra = (f"{cell([v['delta_err'] for v in values], 3)} | {cell([v['factors_err'] for v in values], 3)} | "
                     f"{cell([v['stored'] for v in values], 2)}")
        else:
            extra = "- | - | -"
        print(f"| {name} | {accs} | {extra} |")
    print_per_task(per_seed, scenarios[0])


def print_per_task(per_seed: list[dict[str, dict]], scenario: str) -> None:
    """Each task's accuracy (``scenario``), mean ± std over seeds, for every row of the first table."""
    num_tasks = len(next(iter(per_seed[0].values()))["per_task"][scenario])
    label = "task-IL" if scenario == "task_il" else "class-IL"
    print(f"\n{label} accuracy of each task through each model (mean ± std over seeds):\n")
    print("| model | " + " | ".join(f"task {t + 1}" for t in range(num_tasks)) + " |")
    print("|---|" + "---|" * num_tasks)
    for name in per_seed[0]:
        cells = [cell([r[name]["per_task"][scenario][t] for r in per_seed]) for t in range(num_tasks)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
