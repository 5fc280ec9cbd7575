"""Reproduce the accuracy ledger (docs/RESULTS.md): run each configuration of a group over
several seeds with `lifelong run`, and print mean +- std beside the published numbers.

    python benchmarks/reproduce.py split-mnist [--seeds 0 1 2] [--jobs 2] [--out benchmarks/results]
        [--mammoth benchmarks/results/mammoth.jsonl]

Each run is an ordinary `lifelong run` process writing its own run folder under
``<out>/runs``; a configuration whose run folder is complete is not run again. The table is
printed and written to ``<out>/<group>.md``. Standard deviations are over seeds (n - 1).

When ``<out>/<group>.md`` already holds a table, its means are kept in the new one as the
"previous" column with the change, so a rerun after a fix shows what moved. ``--mammoth`` adds
the reference implementation's results, run on this machine with the same data and seeds
(JSON lines: dataset, model, buffer, seed, class_il, task_il; see docs/RESULTS.md).
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
        # issue 13: no published Split-MNIST numbers for these (see docs/RESULTS.md)
        "gpm": ("--method gpm", None, None),
        "cuber": ("--method cuber", None, None),
        "prd": ("--method prd", None, None),
        "sharp-lite-250": ("--method sharp-lite --buffer-size 250", None, None),
        # what SHARP's parts contribute, on its MNIST network: the sparse network (sharp), the
        # reference's replay of the last task without it, every task's replay without it
        "sharp-conv-250": ("--method sharp --backbone sharp-conv --buffer-size 250", None, None),
        "sharp-lite-conv-last-250": ("--method sharp-lite --backbone sharp-conv --buffer-size 250 "
                                     "--param recent_tasks=1", None, None),
        "sharp-lite-conv-250": ("--method sharp-lite --backbone sharp-conv --buffer-size 250", None, None),
        "sharp-dense-conv-250": ("--method sharp --backbone sharp-conv --buffer-size 250 --param pruning=0.0",
                                 None, None),
        # the reference's optimisation (comparison_with_raw_replay.sh): Adadelta lr 1, batches of 256,
        # 10 phases of 3 epochs
        "sharp-reference-conv-250": ("--method sharp --backbone sharp-conv --buffer-size 250 --optimizer adadelta "
                                     "--lr 1.0 --batch-size 256 --replay-batch-size 256 --epochs 30", None, None),
        "gere-200": ("--config examples/gere.yaml --buffer-size 200 --lr 0.01 --batch-size 10 --replay-batch-size 10",
                     None, None),
        "recap-er-200": ("--config examples/recap_er.yaml --buffer-size 200 --lr 0.01 --batch-size 10 "
                         "--replay-batch-size 10", None, None),
    }
    published = {  # (class-IL, task-IL) for buffer 200, 500 and 5120
        "er": ((80.43, 97.86), (86.12, 99.04), (93.40, 99.33)),
        "er-ace": ((None, None), (None, None)),
        "agem": ((45.72, 98.61), (46.66, 98.93)),
        "icarl": ((70.51, 98.28), (70.10, 98.32)),
        "icarl-replay": ((None, None), (None, None)),
        "der": ((84.55, 98.80), (90.54, 99.29), (94.90, 99.55)),
        "derpp": ((85.61, 98.76), (91.00, 99.47), (95.30, 99.47)),
    }
    for method, pubs in published.items():
        for size, (c, t) in zip((200, 500, 5120), pubs):
            rows[f"{method}-{size}"] = (f"--method {method} --buffer-size {size}", c, t)
    return {k: (*v, BUZZEGA) for k, v in rows.items()}


# our configuration name -> the reference implementation's model name
MAMMOTH_MODELS = {"finetune": "sgd", "ewc-online": "ewc_on", "joint": "joint"}
MAMMOTH_DATASETS = {"split-mnist": "seq-mnist", "permuted-mnist": "perm-mnist"}


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
        # issue 13 (no published Permuted-MNIST numbers at these settings)
        "prd": ("--benchmark permuted-mnist --method prd", None),
        "sharp-lite-250": ("--benchmark permuted-mnist --method sharp-lite --buffer-size 250 --lr 0.01", None),
        "sharp-250": ("--benchmark permuted-mnist --method sharp --buffer-size 250 --lr 0.01", None),
        "gpm-10": ("--benchmark permuted-mnist --num-tasks 10 --method gpm", None),
        "cuber-10": ("--benchmark permuted-mnist --num-tasks 10 --method cuber", None),
    }
    return {k: (flags, pub, None, src) for k, (flags, pub) in rows.items()}


GROUPS: dict[str, dict[str, tuple[str, float | None, float | None, str]]] = {
    "split-mnist": _split_mnist(),
    "permuted-mnist": _permuted_mnist(),
}


def launch(flags: str, seed: int, folder: Path) -> tuple[dict | None, subprocess.CompletedProcess | None]:
    """``(metrics, None)`` when ``folder`` already holds a complete run; else runs `lifelong run`
    into it and returns ``(metrics or None, the process)`` (exit 1: training diverged, metrics kept)."""
    metrics = folder / "metrics.json"
    if metrics.is_file():
        doc = json.loads(metrics.read_text())
        if doc.get("complete"):
            return doc, None
    cmd = [sys.executable, "-m", "lifelong", "run", *flags.split(), "--seed", str(seed), "--quiet",
           "--threads", "1", "--out", str(folder), "--overwrite"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    done = proc.returncode in (0, 1) and metrics.is_file()
    return (json.loads(metrics.read_text()) if done else None), proc


def run_one(flags: str, seed: int, folder: Path) -> dict:
    doc, proc = launch(flags, seed, folder)
    if doc is None:
        raise SystemExit(f"failed: {' '.join(proc.args)}\n{proc.stderr}")
    return doc


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def previous_means(path: Path) -> dict[str, tuple[float | None, float | None]]:
    """Class-IL and task-IL means of each configuration in an earlier table of this script."""
    found: dict[str, tuple[float | None, float | None]] = {}
    if not path.is_file():
        return found
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    if not lines:
        return found
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    try:
        ci, ti = header.index("class-IL ours"), header.index("task-IL ours")
    except ValueError:
        return found

    def mean(cell: str) -> float | None:
        try:
            return float(cell.split("±")[0])
        except ValueError:
            return None

    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == len(header):
            found[cells[0]] = (mean(cells[ci]), mean(cells[ti]))
    return found


def mammoth_results(path: Path | None, group: str, name: str, flags: str, seeds: list[int]) -> tuple[list, list]:
    """The reference implementation's class-IL and task-IL results for this configuration."""
    if path is None or not path.is_file():
        return [], []
    parts = flags.split()
    if "--method" not in parts:  # a recipe file: no reference implementation
        return [], []
    method = parts[parts.index("--method") + 1]
    buffer = int(parts[parts.index("--buffer-size") + 1]) if "--buffer-size" in parts else None
    model = MAMMOTH_MODELS.get(method, method.replace("-", "_"))
    rows = {}
    for line in path.read_text().splitlines():
        doc = json.loads(line)
        if (doc.get("dataset") == MAMMOTH_DATASETS.get(group) and doc.get("model") == model
                and doc.get("buffer") == buffer and doc.get("seed") in seeds):
            rows[doc["seed"]] = doc
    docs = [rows[s] for s in sorted(rows)]
    # domain-IL (Permuted-MNIST): one accuracy, reported as both
    cil = [d["class_il"] if d.get("class_il") is not None else d["domain_il"] for d in docs]
    til = [d["task_il"] if d.get("task_il") is not None else d["domain_il"] for d in docs]
    return cil, til


def change(now: list[float], before: float | None) -> str:
    if not now or before is None:
        return "-"
    return f"{statistics.mean(now) - before:+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="run only these configurations of the group")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--mammoth", help="JSON lines of the reference implementation's runs")
    args = parser.parse_args()
    out = Path(args.out)
    before = previous_means(out / f"{args.group}.md")
    mammoth = Path(args.mammoth) if args.mammoth else None
    configs = {k: v for k, v in GROUPS[args.group].items() if not args.only or k in args.only}
    jobs = [(name, seed) for name in configs for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        docs = list(pool.map(lambda job: run_one(configs[job[0]][0], job[1],
                                                 out / "runs" / args.group / f"{job[0]}-seed{job[1]}"), jobs))
    results = dict(zip(jobs, docs))
    seeds = " ".join(map(str, args.seeds))
    lines = [
        f"| configuration | command (`lifelong run ...`, seeds {seeds}) | class-IL ours | class-IL Mammoth (run here) | "
        "class-IL published | class-IL change vs previous | task-IL ours | task-IL Mammoth (run here) | "
        "task-IL published | task-IL change vs previous | forgetting (class-IL) | BWT (task-IL) | wall s / run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (flags, pub_c, pub_t, source) in configs.items():
        runs = [results[(name, s)] for s in args.seeds]
        failed = [s for s, r in zip(args.seeds, runs) if not r["complete"]]
        ref_c, ref_t = mammoth_results(mammoth, args.group, name, flags, args.seeds)
        ref_n = f" (n={len(ref_c)})" if 0 < len(ref_c) < len(args.seeds) else ""
        prev_c, prev_t = before.get(name, (None, None))
        if failed:
            lines.append(f"| {name} | `{flags}` | diverged (seeds {' '.join(map(str, failed))}) | {mean_std(ref_c)} | "
                         f"{pub_c if pub_c is not None else '-'} | - | - | {mean_std(ref_t)} | "
                         f"{pub_t if pub_t is not None else '-'} | - | - | - | - |")
            continue
        cil = [r["class_il"]["average_accuracy"] for r in runs]
        til = [r["task_il"]["average_accuracy"] for r in runs]
        fgt = [r["class_il"]["forgetting"] for r in runs if r["class_il"]["forgetting"] is not None]
        bwt = [r["task_il"]["backward_transfer"] for r in runs if r["task_il"].get("backward_transfer") is not None]
        wall = statistics.mean(r["wall_seconds"] for r in runs)
        lines.append(
            f"| {name} | `{flags}` | {mean_std(cil)} | {mean_std(ref_c)}{ref_n} | {pub_c if pub_c is not None else '-'} | "
            f"{change(cil, prev_c)} | {mean_std(til)} | {mean_std(ref_t)}{ref_n} | {pub_t if pub_t is not None else '-'} | "
            f"{change(til, prev_t)} | {mean_std(fgt) if fgt else '-'} | {mean_std(bwt)} | {wall:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.group}.md").write_text(text)


if __name__ == "__main__":
    main()
