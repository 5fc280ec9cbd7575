"""The refresh-learning ledger (docs/RESULTS.md): methods with and without refresh learning,
both published forms, several seeds, and a small sweep of the step size γ and the number of
unlearning steps J. Every measurement is a `lifelong compare` run (paired seeds); runs already
complete are reused.

    python benchmarks/refresh.py forms --benchmark split-mnist [--seeds 0-4] [--jobs 2]
    python benchmarks/refresh.py sweep --benchmark split-mnist --method er [--seeds 0-4]

Writes benchmarks/results/refresh-<what>-<benchmark>.md and prints it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = {"split-mnist": ["er", "derpp", "ewc-online"], "permuted-mnist": ["er", "derpp", "ewc-online"]}


def compare(benchmark: str, method: str, refresh: dict, seeds: str, jobs: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "lifelong", "compare", "--benchmark", benchmark, "--method", method,
           "--seeds", seeds, "--jobs", str(jobs), "--quiet", "--out", str(out), "--refresh", refresh["form"]]
    for key, value in refresh.items():
        if key != "form":
            cmd += ["--refresh-param", f"{key}={value!r}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    from lifelong.runs.compare import refresh_tag

    return json.loads((out / f"compare-{refresh_tag(refresh)}.json").read_text())


def row(label: str, command: str, s: dict) -> str:
    def cell(block: dict) -> str:
        return f"{block['mean']:.2f} ± {block['std']:.2f}"

    parts = [label, f"`{command}`"]
    for scenario in ("class_il", "task_il"):
        d = s[scenario]["difference"]
        parts += [cell(s[scenario]["base"]), cell(s[scenario]["refresh"]),
                  f"{d['mean']:+.2f} ± {d['ci95']:.2f} ({d['refresh_better']}/{len(s['seeds'])})"]
    return "| " + " | ".join(parts) + " |"


HEADER = ("| run | command (`lifelong compare ...`) | class-IL without | class-IL with | class-IL difference (95% CI, "
          "seeds better) | task-IL without | task-IL with | task-IL difference |\n|---|---|---|---|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["forms", "sweep"])
    parser.add_argument("--benchmark", default="split-mnist")
    parser.add_argument("--method", default="er")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    root = HERE / "results" / "runs" / "refresh" / args.benchmark
    lines = [HEADER]
    if args.what == "forms":
        for method in METHODS[args.benchmark]:
            for form in ("paper", "code"):
                s = compare(args.benchmark, method, {"form": form}, args.seeds, args.jobs, root / method)
                cmd = f"--benchmark {args.benchmark} --method {method} --refresh {form} --seeds {args.seeds}"
                lines.append(row(f"{method}, {form} form", cmd, s))
    else:
        for gamma in (1e-5, 1e-4, 1e-3):
            for steps in (1, 2):
                refresh = {"form": "paper", "gamma": gamma, "steps": steps}
                s = compare(args.benchmark, args.method, refresh, args.seeds, args.jobs, root / args.method)
                cmd = (f"--benchmark {args.benchmark} --method {args.method} --refresh paper --refresh-param "
                       f"gamma={gamma!r} --refresh-param steps={steps} --seeds {args.seeds}")
                lines.append(row(f"{args.method}, paper, γ={gamma!r}, J={steps}", cmd, s))
    text = "\n".join(lines) + "\n"
    print(text)
    name = f"refresh-{args.what}-{args.benchmark}" + (f"-{args.method}" if args.what == "sweep" else "")
    (HERE / "results" / f"{name}.md").write_text(text)


if __name__ == "__main__":
    main()
