"""Overhead of refresh learning: end-to-end wall time of a method with and without refresh
(both forms, the paper's every-second-step setting), Split-MNIST, buffer 500. Prints a markdown
table and writes benchmarks/refresh_speed.md. Ratios are given by median and by minimum over
the repeats (the minimum is the least disturbed by other load on a shared machine).

    python benchmarks/refresh_speed.py [--repeats 5] [--methods er derpp ewc-online]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from speed import run_lifelong  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=["er", "derpp", "ewc-online"])
    args = parser.parse_args()
    lines = [f"Split-MNIST, buffer 500, published settings; {args.repeats} repeats; {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}", "",
             "| method | without: wall s (median / min) | paper form | x (median / min) | code form | x (median / min) |",
             "|---|---|---|---|---|---|"]
    for method in args.methods:
        base = run_lifelong(method, [], args.repeats)
        cells = [method, f"{base['wall']:.2f} / {base['min']:.2f}"]
        for form in ("paper", "code"):
            r = run_lifelong(method, ["--refresh", form], args.repeats)
            cells += [f"{r['wall']:.2f} / {r['min']:.2f}", f"{r['wall'] / base['wall']:.2f} / {r['min'] / base['min']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Command: `python benchmarks/refresh_speed.py " + " ".join(sys.argv[1:]) + "`"]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "refresh_speed.md").write_text(text)


if __name__ == "__main__":
    main()
