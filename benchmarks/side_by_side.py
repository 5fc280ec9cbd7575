"""Runs started side by side with default settings, as users start experiments: the wall time
of N `lifelong run` processes started at once, against the same N one after another. With
spinning intra-op threads, runs that share the cores slow each other by orders of magnitude;
the default of one thread per run must keep N at once at most 1.1x the time of N in turn.

    python benchmarks/side_by_side.py [--runs 2 4] [--method finetune] [--threads T]

Prints a markdown table and writes benchmarks/side_by_side.md (``--threads`` passes an explicit
thread count to every run, to show what the old default did).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def command(method: str, out: str, threads: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "lifelong", "run", "--method", method, "--quiet", "--out", out]
    return cmd + (["--threads", str(threads)] if threads else [])


def in_turn(n: int, method: str, threads: int | None, timeout: float) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for i in range(n):
            subprocess.run(command(method, f"{tmp}/run{i}", threads), check=True, timeout=timeout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def at_once(n: int, method: str, threads: int | None, timeout: float) -> float | None:
    """Wall seconds until all N finish; ``None`` when they did not within ``timeout``."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        procs = [subprocess.Popen(command(method, f"{tmp}/run{i}", threads), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for i in range(n)]
        try:
            for p in procs:
                p.wait(timeout=max(1.0, timeout - (time.perf_counter() - start)))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            return None
        if any(p.returncode for p in procs):
            raise SystemExit("a run failed")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--method", default="finetune")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on N at once after this many seconds")
    args = parser.parse_args()
    threads = f"--threads {args.threads}" if args.threads else "default threads"
    lines = [f"`lifelong run --method {args.method}` on Split-MNIST, {threads}; {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}", "",
             "| runs | one after another, s | all at once, s | at once / in turn |", "|---|---|---|---|"]
    for n in args.runs:
        seq = in_turn(n, args.method, args.threads, args.timeout)
        par = at_once(n, args.method, args.threads, args.timeout)
        ratio = "-" if par is None else f"{par / seq:.2f}"
        lines.append(f"| {n} | {seq:.1f} | {'not done in %.0f' % args.timeout if par is None else f'{par:.1f}'} "
                     f"| {ratio} |")
        print(lines[-1], flush=True)
    lines += ["", "Command: `python benchmarks/side_by_side.py " + " ".join(sys.argv[1:]) + "`"]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.threads:
        (HERE / "side_by_side.md").write_text(text)


if __name__ == "__main__":
    main()
