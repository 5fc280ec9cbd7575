"""Is a change slower? Every preset's `lifelong run` timed on two source trees, interleaved.

    python benchmarks/speed_ab.py BEFORE_SRC [--repeats 5] [--methods er derpp ...]

``BEFORE_SRC`` is the ``src`` folder of another checkout (e.g. ``git worktree add /tmp/before
REV`` then ``/tmp/before/src``); the current tree is this checkout's ``src``. For each method
the two trees run alternately (before, after, before, after, ...), so that drift in the load
of the machine hits both alike, and the table gives the median wall time of each and their
ratio. Prints the table and writes it as markdown (``--out``).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from speed import measure  # noqa: E402


def timed_run(src: Path, method: str) -> float:
    env_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src) + (os.pathsep + env_path if env_path else "")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "lifelong", "run", "--method", method, "--quiet", "--out", f"{tmp}/run"]
            return measure(cmd)[0]
    finally:
        if env_path is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = env_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="the src/ folder of the checkout to compare against")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=None, help="default: every preset")
    parser.add_argument("--out", default=str(HERE / "speed_ab.md"))
    args = parser.parse_args()
    after = HERE.parent / "src"
    if not (args.before / "lifelong" / "__init__.py").is_file():
        raise SystemExit(f"{args.before} holds no lifelong package; give the src/ folder of a checkout")
    if args.methods is None:
        from lifelong.methods import PRESETS

        args.methods = list(PRESETS)
    lines = [f"Split-MNIST, MLP, each preset's published settings; before = `{args.before}`, after = this "
             f"checkout; median of {args.repeats} interleaved runs each; {platform.machine()}, {os.cpu_count()} CPUs, "
             f"{time.strftime('%Y-%m-%d')}", "",
             "| method | before s | after s | after / before |", "|---|---|---|---|"]
    for method in args.methods:
        walls: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.repeats):
            walls["before"].append(timed_run(args.before, method))
            walls["after"].append(timed_run(after, method))
        b, a = statistics.median(walls["before"]), statistics.median(walls["after"])
        lines.append(f"| {method} | {b:.2f} | {a:.2f} | {a / b:.3f} |")
        print(lines[-1], flush=True)
    lines += ["", "Command: `python benchmarks/speed_ab.py " + " ".join(sys.argv[1:]) + "`"]
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
