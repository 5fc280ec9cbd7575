"""End-to-end speed of `lifelong run` on Split-MNIST (MLP, batch 10, one epoch per task).

Each configuration runs as its own process, from start to exit (imports, data loading, training
and evaluation included), `--repeats` times; the table gives the median wall time, the training
steps per second over the whole process, and the peak resident memory, beside a bare
`import torch` and a hand-written PyTorch loop of the same protocol (handwritten_er.py).

    python benchmarks/speed.py [--repeats 3] [--methods finetune er ...] [--out benchmarks/speed.md]

Each method runs with its published settings for Split-MNIST at buffer 500 (hparams/), as
`lifelong run --method M` does; the last column is the wall-time ratio to `finetune`.

Prints the table and writes it as markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024.0


def run_lifelong(method: str, extra: list[str], repeats: int) -> dict:
    walls, rss, steps = [], [], 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            cmd = [sys.executable, "-m", "lifelong", "run", "--method", method, "--quiet", "--out", str(out), *extra]
            wall, peak = measure(cmd)
            steps = json.loads((out / "metrics.json").read_text())["steps"]
        walls.append(wall)
        rss.append(peak)
    return {"wall": statistics.median(walls), "min": min(walls), "rss": max(rss), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=None, help="default: every preset")
    parser.add_argument("--extra", default="", help="extra flags for every `lifelong run`, e.g. '--buffer-size 200'")
    parser.add_argument("--out", default=str(HERE / "speed.md"))
    args = parser.parse_args()
    extra = args.extra.split()
    if args.methods is None:
        from lifelong.methods import PRESETS

        args.methods = list(PRESETS)

    torch_walls, torch_rss = zip(*(measure([sys.executable, "-c", "import torch"]) for _ in range(args.repeats)))
    base_wall, base_rss = statistics.median(torch_walls), max(torch_rss)
    hand = [measure([sys.executable, str(HERE / "handwritten_er.py")]) for _ in range(args.repeats)]
    hand_wall, hand_rss = statistics.median(w for w, _ in hand), max(r for _, r in hand)
    rows = {m: run_lifelong(m, extra, args.repeats) for m in args.methods}

    ref = rows.get("finetune", {}).get("wall")
    lines = [
        f"Split-MNIST, MLP, 1 epoch/task, buffer 500, each method's published settings{' ' + args.extra if extra else ''}; "
        f"median of {args.repeats} runs; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}",
        "",
        "| run | wall s (median) | wall s (min) | steps/s (whole process) | peak RSS MiB | RSS above `import torch` MiB | x finetune |",
        "|---|---|---|---|---|---|---|",
        f"| `import torch` only | {base_wall:.2f} | {min(torch_walls):.2f} | - | {base_rss:.0f} | 0 | - |",
        f"| hand-written PyTorch ER loop | {hand_wall:.2f} | {min(w for w, _ in hand):.2f} | {6002 / hand_wall:.0f} | "
        f"{hand_rss:.0f} | {hand_rss - base_rss:.0f} | {hand_wall / ref:.2f} |" if ref else "",
    ]
    for method, r in rows.items():
        ratio = f"{r['wall'] / ref:.2f}" if ref else "-"
        lines.append(f"| `lifelong run --method {method}` | {r['wall']:.2f} | {r['min']:.2f} | {r['steps'] / r['wall']:.0f} | "
                     f"{r['rss']:.0f} | {r['rss'] - base_rss:.0f} | {ratio} |")
    lines.append("")
    lines.append("Command: `python benchmarks/speed.py " + " ".join(sys.argv[1:]) + "`")
    text = "\n".join(line for line in lines if line is not None) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
