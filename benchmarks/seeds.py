"""Wall time of five seeds of Split-MNIST ER (buffer 500), the plain way and the faster ways,
against one seed. Prints a markdown table and writes benchmarks/seeds.md.

    python benchmarks/seeds.py [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(commands: list[list[str]]) -> float:
    """Wall seconds of running ``commands`` one after the other."""
    start = time.perf_counter()
    for cmd in commands:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    run = [sys.executable, "-m", "lifelong", "run", "--method", "er", "--quiet"]
    ways = {
        "1 seed (`lifelong run`)": lambda d: [run + ["--out", f"{d}/one"]],
        "5 seeds, 5 processes one after the other (plain)":
            lambda d: [run + ["--seed", str(s), "--out", f"{d}/plain{s}"] for s in range(5)],
        "5 seeds, one process (`--seeds 0-4`)": lambda d: [run + ["--seeds", "0-4", "--out", f"{d}/seq"]],
        "5 seeds, two processes (`--seeds 0-4 --jobs 2`)":
            lambda d: [run + ["--seeds", "0-4", "--jobs", "2", "--out", f"{d}/par"]],
    }
    results = {}
    for name, commands in ways.items():
        walls = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                walls.append(timed(commands(tmp)))
        results[name] = statistics.median(walls)
    one = results["1 seed (`lifelong run`)"]
    lines = [f"Split-MNIST, ER, buffer 500, published settings; median of {args.repeats} repeats; "
             f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}", "",
             "| how | wall s | x one seed |", "|---|---|---|"]
    lines += [f"| {name} | {wall:.1f} | {wall / one:.2f} |" for name, wall in results.items()]
    lines += ["", "Command: `python benchmarks/seeds.py " + " ".join(sys.argv[1:]) + "`"]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "seeds.md").write_text(text)


if __name__ == "__main__":
    main()
