"""The online ledger (docs/RESULTS.md, "Online and Si-Blurry"): every method of the online
literature, with and without view-batch replay and refresh, on online Split-MNIST and on
Si-Blurry MNIST, over several seeds; A_auc and A_last mean +- std.

    python benchmarks/online_ledger.py [--seeds 0 1 2 3 4] [--jobs 2] [--buffer-size 200]
        [--streams split-mnist si-blurry-mnist] [--methods finetune er ...] [--variants plain vbr ...]
        [--out benchmarks/results]

Each run is an ordinary ``lifelong run --online`` process (anytime evaluation every 1000
examples, the default of the online protocol) writing its own run folder under
``<out>/runs/online``; a complete run folder is not run again. The table is printed and written
to ``<out>/online.md``. Standard deviations are over seeds (n - 1).
"""
from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reproduce import launch, mean_std  # one run launched, and the ledger's mean ± std (n - 1), as benchmarks/reproduce.py prints it

HERE = Path(__file__).resolve().parent

METHODS = ("finetune", "er", "er-ace", "derpp", "pcr", "hpcr")
MEMORYLESS = ("finetune",)
VARIANTS = {  # name -> extra flags
    "plain": "",
    "vbr": "--view-batch 4",
    "refresh": "--refresh code",
    "vbr+refresh": "--view-batch 4 --refresh code",
}


def flags_of(stream: str, method: str, variant: str, buffer_size: int) -> str:
    memory = "" if method in MEMORYLESS else f" --buffer-size {buffer_size}"
    extra = VARIANTS[variant]
    return f"--benchmark {stream} --method {method}{memory} --online" + (f" {extra}" if extra else "")


def run_one(flags: str, seed: int, folder: Path) -> dict | str:
    """The run's metrics document, or the one-line reason it could not run."""
    doc, proc = launch(flags, seed, folder)
    if doc is not None:
        return doc
    lines = proc.stderr.strip().splitlines()
    if proc.returncode == 2:  # refused: the combination is not supported
        return lines[-1] if lines else "refused"
    return f"failed (exit {proc.returncode}): {lines[-1] if lines else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--buffer-size", type=int, default=200)
    parser.add_argument("--streams", nargs="+", default=["split-mnist", "si-blurry-mnist"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    out = Path(args.out)
    configs = [(s, m, v) for s in args.streams for m in args.methods for v in args.variants]
    # the cheap variants first, so that an interrupted ledger has whole rows of them
    jobs = [((s, m, v), seed) for v in args.variants for s in args.streams for m in args.methods
            for seed in args.seeds]

    def work(job):
        (stream, method, variant), seed = job
        folder = out / "runs" / "online" / f"{stream}-{method}-{variant}-b{args.buffer_size}-seed{seed}"
        return run_one(flags_of(stream, method, variant, args.buffer_size), seed, folder)

    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(work, jobs)))
    seeds = " ".join(map(str, args.seeds))
    lines = [
        f"| stream | method | variant | command (`lifelong run ...`, seeds {seeds}) | A_auc | A_last | F_last | "
        "class-IL avg (matrix) | wall s / run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for stream, method, variant in configs:
        flags = flags_of(stream, method, variant, args.buffer_size)
        runs = [results[((stream, method, variant), s)] for s in args.seeds]
        refused = next((r for r in runs if isinstance(r, str)), None)
        if refused is not None:
            why = refused if refused.startswith("failed") else f"refused: {refused}"
            lines.append(f"| {stream} | {method} | {variant} | `{flags}` | {why} | | | | |")
            continue
        failed = [s for s, r in zip(args.seeds, runs) if not r["complete"]]
        if failed:
            lines.append(f"| {stream} | {method} | {variant} | `{flags}` | diverged (seeds "
                         f"{' '.join(map(str, failed))}) | | | | |")
            continue
        online = [r["online"] for r in runs]
        auc = [o["a_auc"] for o in online]
        last = [o["a_last"] for o in online]
        f_last = [o["f_last"] for o in online if o.get("f_last") is not None]
        cil = [r["class_il"]["average_accuracy"] for r in runs]
        wall = statistics.mean(r["wall_seconds"] for r in runs)
        lines.append(f"| {stream} | {method} | {variant} | `{flags}` | {mean_std(auc)} | {mean_std(last)} | "
                     f"{mean_std(f_last)} | {mean_std(cil)} | {wall:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "online.md").write_text(text)


if __name__ == "__main__":
    main()
