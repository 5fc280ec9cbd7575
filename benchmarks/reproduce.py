"""Reproduce the accuracy ledger (docs/RESULTS.md): run each configuration of a group over
several seeds with `lifelong run`, and print mean +- std beside the published numbers.

    python benchmarks/reproduce.py split-mnist [--seeds 0 1 2] [--jobs 2] [--out benchmarks/results]

Each run is an ordinary `lifelong run` process writing its own run folder under
``<out>/runs``; a configuration whose run folder is complete is not run again. The table is
printed and written to ``<out>/<group>.md``. Standard deviations are over seeds (n - 1).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (flags, published class-IL, published task-IL, source of the published numbers).
# Learning rates and method parameters come from src/lifelong/hparams/<benchmark>.yaml.
BUZZEGA = "Buzzega et al. 2020, Table 2"


def _split_mnist() -> dict:
    rows = {
        "finetune": ("--method finetune", 19.60, 94.94),
        "joint": ("--method joint", 95.57, 99.51),
        "lwf": ("--method lwf", 19.62, 94.11),
        "ewc": ("--method ewc", None, None),
        "ewc-online": ("--method ewc-online", 20.46, 98.39),
        "si": ("--method si", 19.27, 96.00),
        "mas": ("--method mas", None, None),
    }
    published = {  # (class-IL, task-IL) for buffer 200 and 500
        "er": ((80.43, 97.86), (86.12, 99.04)),
        "er-ace": ((None, None), (None, None)),
        "agem": ((45.72, 98.61), (46.66, 98.93)),
        "icarl": ((70.51, 98.28), (70.10, 98.32)),
        "der": ((84.55, 98.80), (90.54, 99.29)),
        "derpp": ((85.61, 98.76), (91.00, 99.47)),
    }
    for method, pubs in published.items():
        for size, (c, t) in zip((200, 500), pubs):
            rows[f"{method}-{size}"] = (f"--method {method} --buffer-size {size}", c, t)
    return {k: (*v, BUZZEGA) for k, v in rows.items()}


def _permuted_mnist() -> dict:
    # Domain-IL: one accuracy (class-IL and task-IL agree). Published values recalled from
    # Buzzega et al. 2020, Table 2 (P-MNIST column); not checked against the paper here.
    src = "Buzzega et al. 2020, Table 2 (recalled, unverified)"
    rows = {
        "finetune": ("--benchmark permuted-mnist --method finetune", 40.70),
        "ewc": ("--benchmark permuted-mnist --method ewc", None),
        "ewc-online": ("--benchmark permuted-mnist --method ewc-online", 75.79),
        "si": ("--benchmark permuted-mnist --method si", 65.86),
        "lwf": ("--benchmark permuted-mnist --method lwf", None),
        "er-200": ("--benchmark permuted-mnist --method er --buffer-size 200", 72.37),
        "er-500": ("--benchmark permuted-mnist --method er --buffer-size 500", 80.60),
        "derpp-200": ("--benchmark permuted-mnist --method derpp --buffer-size 200", 83.58),
        "derpp-500": ("--benchmark permuted-mnist --method derpp --buffer-size 500", 88.21),
    }
    return {k: (flags, pub, None, src) for k, (flags, pub) in rows.items()}


GROUPS: dict[str, dict[str, tuple[str, float | None, float | None, str]]] = {
    "split-mnist": _split_mnist(),
    "permuted-mnist": _permuted_mnist(),
}


def run_one(flags: str, seed: int, folder: Path) -> dict:
    metrics = folder / "metrics.json"
    if metrics.is_file():
        doc = json.loads(metrics.read_text())
        if doc.get("complete"):
            return doc
    cmd = [sys.executable, "-m", "lifelong", "run", *flags.split(), "--seed", str(seed), "--quiet",
           "--threads", "1", "--out", str(folder), "--overwrite"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1) or not metrics.is_file():  # 1: training diverged, metrics kept
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    return json.loads(metrics.read_text())


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="run only these configurations of the group")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    out = Path(args.out)
    configs = {k: v for k, v in GROUPS[args.group].items() if not args.only or k in args.only}
    jobs = [(name, seed) for name in configs for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        docs = list(pool.map(lambda job: run_one(configs[job[0]][0], job[1],
                                                 out / "runs" / args.group / f"{job[0]}-seed{job[1]}"), jobs))
    results = dict(zip(jobs, docs))
    seeds = " ".join(map(str, args.seeds))
    lines = [
        f"| configuration | command (`lifelong run ...`, seeds {seeds}) | class-IL ours | class-IL published | "
        "task-IL ours | task-IL published | forgetting (class-IL) | wall s / run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (flags, pub_c, pub_t, source) in configs.items():
        runs = [results[(name, s)] for s in args.seeds]
        failed = [s for s, r in zip(args.seeds, runs) if not r["complete"]]
        if failed:
            lines.append(f"| {name} | `{flags}` | diverged (seeds {' '.join(map(str, failed))}) | "
                         f"{pub_c if pub_c is not None else '-'} | - | {pub_t if pub_t is not None else '-'} | - | - |")
            continue
        cil = [r["class_il"]["average_accuracy"] for r in runs]
        til = [r["task_il"]["average_accuracy"] for r in runs]
        fgt = [r["class_il"]["forgetting"] for r in runs if r["class_il"]["forgetting"] is not None]
        wall = statistics.mean(r["wall_seconds"] for r in runs)
        lines.append(
            f"| {name} | `{flags}` | {mean_std(cil)} | {pub_c if pub_c is not None else '-'} | {mean_std(til)} | "
            f"{pub_t if pub_t is not None else '-'} | {mean_std(fgt) if fgt else '-'} | {wall:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.group}.md").write_text(text)


if __name__ == "__main__":
    main()
